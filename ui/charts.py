"""Plotly figures built from report rows; pure functions, tested without Streamlit."""

from __future__ import annotations

import html
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from core.money import format_usd
from core.reporting.aggregates import Row
from core.times import next_period, period_start

MAX_SERIES = 8  # more stacks than this are summed into "other"
OTHER = "other"


def _safe(name: str) -> str:
    """Plotly renders a few HTML tags in legends and hovers; a name from data must show as typed."""
    return html.escape(name, quote=False)


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
            f"<b>{_safe(a.key)}</b> ({a.scope}), {a.hour:%b} {a.hour.day} {a.hour:%H}:00 UTC: "  # type: ignore[attr-defined]
            f"spent {format_usd(a.spend)}, usually {format_usd(a.baseline)}{ratio}"  # type: ignore[attr-defined]
        )
    if len(anomalies) > MARKED_PER_BAR:
        lines.append(f"and {len(anomalies) - MARKED_PER_BAR} more")
    return "<br>".join(lines)


def spend_figure(
    rows: list[Row],
    stack_label: str,
    granularity: str,
    anomalies: Sequence[object] = (),
    tz: ZoneInfo | None = None,
    axis: list[date] | None = None,
) -> go.Figure:
    """Stacked bars of spend per period, labelled as periods (a category axis, not instants); exact hover.

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
    figure = go.Figure()
    for name, values in series.items():
        amounts = [values.get(p, Decimal(0)) for p in periods]
        figure.add_bar(
            name=_safe(name),
            x=labels,
            # plotly needs numbers to draw; the exact amount travels as text in the hover
            y=[float(a) for a in amounts],
            customdata=[[_safe(name), format_usd(a)] for a in amounts],
            hovertemplate="%{x}<br>%{customdata[0]}: %{customdata[1]}<extra></extra>",
        )
    _mark(figure, rows, anomalies, granularity, tz or ZoneInfo("UTC"), dict(zip(periods, labels, strict=True)))
    figure.update_layout(
        barmode="stack",
        xaxis_title={"day": "Day", "week": "Week", "month": "Month"}.get(granularity, granularity),
        yaxis_title="Spend (USD)",
        legend_title=stack_label,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=380,
        yaxis={"tickprefix": "$"},
        # categories: plotly would otherwise read the labels as instants ("00:00:00 Nov 1", "Aug 31")
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": labels},
    )
    return figure


def _mark(
    figure: go.Figure,
    rows: list[Row],
    anomalies: Sequence[object],
    granularity: str,
    tz: ZoneInfo,
    labels: dict[str, str],
) -> None:
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
        return
    tops: dict[str, Decimal] = {}
    for r in rows:
        if r.period:
            tops[r.period.isoformat()] = tops.get(r.period.isoformat(), Decimal(0)) + r.totals.cost_total
    highest = max(tops.values(), default=Decimal(0))
    periods = sorted(by_period)
    figure.add_scatter(
        name="Anomaly",
        x=[labels[p] for p in periods],
        # just above the bar (plotly draws numbers; the exact amounts are in the hover)
        y=[float(tops.get(p, Decimal(0))) + float(highest) * 0.05 for p in periods],
        mode="markers",
        marker={"symbol": "triangle-down", "size": 16, "color": ANOMALY_COLOR, "line": {"width": 1, "color": "white"}},
        customdata=[[anomaly_hover(by_period[p])] for p in periods],
        hovertemplate="%{customdata[0]}<extra>Anomaly</extra>",
    )
