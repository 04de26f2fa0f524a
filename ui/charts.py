"""The Overview's spend chart as a Vega-Lite spec built from report rows; pure functions, tested without Streamlit.

Vega-Lite, not plotly: the browser loads and runs plotly.js (4.7 MB) on every visit before
Streamlit draws the page around it, which cost the Overview about a second in Chromium
(issue 22, point 19); Vega-Lite's bundle is a sixth of it. Names from data are values in the
chart's data, drawn as text (never markup).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.money import format_exact_usd, format_usd
from core.reporting.aggregates import Row
from core.times import next_period, period_start

MAX_SERIES = 8  # more stacks than this are summed into "other"
OTHER = "other"
HEIGHT = 380


def spend_series(rows: list[Row], max_series: int = MAX_SERIES) -> dict[str, dict[str, Decimal]]:
    """{series name: {period label: spend}}, biggest series first, the tail summed into ``other``."""
    by_key: dict[str, Decimal] = {}
    for r in rows:
        by_key[r.key or ""] = by_key.get(r.key or "", Decimal(0)) + r.totals.cost_total
    ranked = sorted(by_key, key=lambda k: (-by_key[k], k))
    keep = set(ranked[:max_series]) if len(ranked) > max_series else set(ranked)
    series: dict[str, dict[str, Decimal]] = {k: {} for k in ranked if k in keep}
    if len(ranked) > max_series:
        series[OTHER] = {}
    for r in rows:
        key = r.key or ""
        name = key if key in keep else OTHER
        label = r.period.isoformat() if r.period else ""
        series[name][label] = series[name].get(label, Decimal(0)) + r.totals.cost_total
    return series


def period_label(start: date, granularity: str, with_year: bool = False) -> str:
    """A bar's period in words: ``Aug 2026``, ``Week of Aug 3``, ``Aug 3`` (with the year when asked)."""
    day = f"{start:%b} {start.day}" + (f", {start.year}" if with_year else "")
    if granularity == "month":
        return f"{start:%b %Y}"
    if granularity == "week":
        return f"Week of {day}"
    return day


ANOMALY_COLOR = "#d62728"
MARKED_PER_BAR = 5  # anomalies named in one marker's hover; the rest are counted


def anomaly_hover(anomalies: Sequence[object]) -> str:
    """Each anomaly's key, hour, spend and usual spend (the baseline), as the marker's hover shows them."""
    lines = []
    for a in list(anomalies)[:MARKED_PER_BAR]:
        ratio = f" ({a.ratio}x)" if a.ratio is not None else ""  # type: ignore[attr-defined]
        lines.append(
            f"{a.key} ({a.scope}), {a.hour:%b} {a.hour.day} {a.hour:%H}:00 UTC: "  # type: ignore[attr-defined]
            f"spent {format_usd(a.spend)}, usually {format_usd(a.baseline)}{ratio}"  # type: ignore[attr-defined]
        )
    if len(anomalies) > MARKED_PER_BAR:
        lines.append(f"and {len(anomalies) - MARKED_PER_BAR} more")
    return "; ".join(lines)


AXIS_TITLES = {"day": "Day", "week": "Week", "month": "Month"}


def spend_chart(
    rows: list[Row],
    stack_label: str,
    granularity: str,
    anomalies: Sequence[object] = (),
    tz: ZoneInfo | None = None,
    axis: list[date] | None = None,
) -> dict[str, Any]:
    """Stacked bars of spend per period, labelled as periods (in order, not instants); the exact amount on hover.

    ``anomalies`` (objects with scope, key, hour, spend, baseline, ratio) are marked above the bar of the
    period holding their hour in ``tz``: a red triangle whose hover names each one. ``axis``: every period
    of the range (zero where nothing was spent), so days without spend are empty days, not hidden; by
    default the periods of ``rows``.
    """
    series = spend_series(rows)
    found = {r.period.isoformat() for r in rows if r.period}
    periods = sorted(found | {d.isoformat() for d in axis or ()})
    starts = [date.fromisoformat(p) for p in periods]
    with_year = len({d.year for d in starts}) > 1
    labels = [period_label(d, granularity, with_year) for d in starts]
    title = AXIS_TITLES.get(granularity, granularity)
    bars = [
        # Vega-Lite needs numbers to draw; the exact amount travels as text for the hover
        {"period": label, "series": name, "order": order, "spend": float(amount), "exact": format_exact_usd(amount)}
        for order, (name, values) in enumerate(series.items())
        for period, label in zip(periods, labels, strict=True)
        for amount in (values.get(period, Decimal(0)),)
    ]
    x = {"field": "period", "type": "ordinal", "sort": labels, "title": title, "axis": {"labelOverlap": True}}
    layers: list[dict[str, Any]] = [
        {
            "data": {"name": "bars"},
            "mark": {"type": "bar"},
            "encoding": {
                "x": x,
                "y": {"field": "spend", "type": "quantitative", "stack": "zero", "title": "Spend (USD)",
                      "axis": {"format": "$,.2f"}},
                "color": {"field": "series", "type": "nominal", "sort": list(series), "title": stack_label},
                "order": {"field": "order", "type": "quantitative"},
                "tooltip": [
                    {"field": "period", "title": title},
                    {"field": "series", "title": stack_label},
                    {"field": "exact", "title": "Spend"},
                ],
            },
        }
    ]  # fmt: skip
    datasets: dict[str, list[dict[str, Any]]] = {"bars": bars}
    marks = _marks(rows, anomalies, granularity, tz or ZoneInfo("UTC"), dict(zip(periods, labels, strict=True)))
    if marks:
        datasets["anomalies"] = marks
        layers.append(
            {
                "data": {"name": "anomalies"},
                "mark": {"type": "point", "shape": "triangle-down", "filled": True, "size": 220,
                         "color": ANOMALY_COLOR, "stroke": "white", "strokeWidth": 1, "opacity": 1},
                "encoding": {
                    "x": x,
                    "y": {"field": "y", "type": "quantitative"},
                    "tooltip": [{"field": "anomalies", "title": "Anomaly"}],
                },
            }
        )  # fmt: skip
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "height": HEIGHT,
        "datasets": datasets,
        "layer": layers,
        # SVG: the anomaly markers are elements a browser (and a test) can point at
        "usermeta": {"embedOptions": {"renderer": "svg"}},
    }


def _marks(
    rows: list[Row],
    anomalies: Sequence[object],
    granularity: str,
    tz: ZoneInfo,
    labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One marker per period holding anomalies: its label, a height just above the bar, and the hover text."""
    by_period: dict[str, list[object]] = {}
    starts = sorted(labels)  # each period's first day inside the range (a cut first week starts late)
    for a in anomalies:
        hour: datetime = a.hour  # type: ignore[attr-defined]
        day = hour.astimezone(tz).date().isoformat()
        at = bisect_right(starts, day) - 1
        ends = next_period(period_start(date.fromisoformat(starts[at]), granularity), granularity) if at >= 0 else None
        if ends is not None and day < ends.isoformat():
            by_period.setdefault(starts[at], []).append(a)
    if not by_period:
        return []
    tops: dict[str, Decimal] = {}
    for r in rows:
        if r.period:
            tops[r.period.isoformat()] = tops.get(r.period.isoformat(), Decimal(0)) + r.totals.cost_total
    highest = max(tops.values(), default=Decimal(0))
    return [
        {
            "period": labels[p],
            # just above the bar (drawn as a number; the exact amounts are in the hover)
            "y": float(tops.get(p, Decimal(0))) + float(highest) * 0.05,
            "anomalies": anomaly_hover(by_period[p]),
            "count": len(by_period[p]),
        }
        for p in sorted(by_period)
    ]
