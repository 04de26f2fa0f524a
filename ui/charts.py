"""The Overview's spend chart: stacked bars of spend per period, drawn by the server as HTML and CSS.

Pure functions, tested without Streamlit. Neither plotly nor Vega-Lite: a browser opening the
Overview evaluated plotly.js (4.7 MB), then Vega's bundle (775 kB) and ran its dataflow, before it
drew the page around the chart (issue 22, point 19: Vega-Lite was 0.12 s of a return visit's 1.0 s
in Chromium at 1M calls); these bars are a few hundred plain elements that ``st.html`` draws as it
draws text. A bar's exact amount and a marker's anomalies show on hover (a CSS tooltip of the
element's ``aria-label``, which a screen reader reads too). Names from data are escaped, drawn as
text and never markup; ``st.html`` sanitises the markup as well.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal
from html import escape
from zoneinfo import ZoneInfo

from core.money import format_exact_usd, format_usd
from core.reporting.aggregates import Row
from core.times import next_period, period_start

MAX_SERIES = 8  # more stacks than this are summed into "other"
OTHER = "other"
HEIGHT = 380  # of the bars' area, in pixels
MAX_LABELS = 31  # period labels on the axis: every one up to a month of days, every 2nd or 3rd beyond
# Streamlit's categorical colours (what Vega-Lite drew with), "other" in grey
COLORS = ("#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a")
OTHER_COLOR = "#a3a8b4"
ANOMALY_COLOR = "#d62728"
MARKED_PER_BAR = 5  # anomalies named in one marker's hover; the rest are counted
AXIS_TITLES = {"day": "Day", "week": "Week", "month": "Month"}


@dataclass(frozen=True)
class Bar:
    """One series' spend in one period: a segment of that period's stack."""

    period: str  # the period's label on the axis
    series: str
    spend: Decimal
    exact: str  # the amount as its hover shows it, every digit


@dataclass(frozen=True)
class Marker:
    """The anomalies of one period: a red triangle above its stack, naming them on hover."""

    period: str
    hover: str


@dataclass(frozen=True)
class SpendChart:
    """What the chart draws: every period of the axis in order, the series biggest first, the bars."""

    periods: tuple[str, ...]
    series: tuple[str, ...]
    bars: tuple[Bar, ...]  # every series in every period, zero where nothing was spent
    markers: tuple[Marker, ...]
    axis_title: str  # Day, Week or Month
    stack_label: str  # Provider or Model

    def stack_totals(self) -> dict[str, Decimal]:
        """Each period's stack height: its bars' spend summed."""
        totals = dict.fromkeys(self.periods, Decimal(0))
        for bar in self.bars:
            totals[bar.period] += bar.spend
        return totals


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


def spend_chart(
    rows: list[Row],
    stack_label: str,
    granularity: str,
    anomalies: Sequence[object] = (),
    tz: ZoneInfo | None = None,
    axis: list[date] | None = None,
) -> SpendChart:
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
    bars = tuple(
        Bar(label, name, amount, format_exact_usd(amount))
        for name, values in series.items()
        for period, label in zip(periods, labels, strict=True)
        for amount in (values.get(period, Decimal(0)),)
    )
    markers = _markers(anomalies, granularity, tz or ZoneInfo("UTC"), dict(zip(periods, labels, strict=True)))
    return SpendChart(
        tuple(labels), tuple(series), bars, markers, AXIS_TITLES.get(granularity, granularity), stack_label
    )


def _markers(anomalies: Sequence[object], granularity: str, tz: ZoneInfo, labels: dict[str, str]) -> tuple[Marker, ...]:
    """One marker per period holding anomalies: the period's label and the hover text."""
    by_period: dict[str, list[object]] = {}
    starts = sorted(labels)  # each period's first day inside the range (a cut first week starts late)
    for a in anomalies:
        hour: datetime = a.hour  # type: ignore[attr-defined]
        day = hour.astimezone(tz).date().isoformat()
        at = bisect_right(starts, day) - 1
        ends = next_period(period_start(date.fromisoformat(starts[at]), granularity), granularity) if at >= 0 else None
        if ends is not None and day < ends.isoformat():
            by_period.setdefault(starts[at], []).append(a)
    return tuple(Marker(labels[p], anomaly_hover(by_period[p])) for p in sorted(by_period))


def y_ticks(highest: Decimal) -> list[Decimal]:
    """The spend axis: from 0 to a round top at or above ``highest``, in 2 to 5 steps of 1, 2, 2.5 or 5
    times a power of ten (``$0.00, $0.50, ..., $2.00``)."""
    if highest <= 0:
        return [Decimal(0), Decimal(1)]
    raw = highest / 5
    power = Decimal(1).scaleb(raw.adjusted())
    step = next(
        m * power for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)) if m * power >= raw
    )
    steps = int((highest / step).to_integral_value(rounding=ROUND_CEILING))
    return [step * i for i in range(steps + 1)]


def _percent(part: Decimal, whole: Decimal) -> str:
    return f"{float(part / whole * 100):.3f}%"


def chart_html(chart: SpendChart) -> str:
    """The chart as HTML for ``st.html``: the spend axis, a column of stacked bars per period, anomaly
    markers, the period labels and the legend, laid out by CSS to the page's width."""
    totals = chart.stack_totals()
    ticks = y_ticks(max(totals.values(), default=Decimal(0)))
    top = ticks[-1]
    colors = {name: OTHER_COLOR if name == OTHER else COLORS[i % len(COLORS)] for i, name in enumerate(chart.series)}
    by_period: dict[str, list[Bar]] = {p: [] for p in chart.periods}
    for bar in chart.bars:
        by_period[bar.period].append(bar)
    marked = {m.period: m for m in chart.markers}
    every = -(-len(chart.periods) // MAX_LABELS)  # ceil: one label in every ``every`` periods
    title = f"Spend per {chart.axis_title.lower()}, stacked by {chart.stack_label.lower()}"
    out = [_CSS, f'<figure class="spend-chart" aria-label="{escape(title)}">']
    out.append('<div class="sc-ytitle">Spend (USD)</div><div class="sc-yticks">')
    out += [f'<span style="bottom:{_percent(t, top)}">{format_usd(t)}</span>' for t in ticks]
    out.append('</div><div class="sc-plot">')
    out += [f'<div class="sc-grid" style="bottom:{_percent(t, top)}"></div>' for t in ticks[1:]]
    half = len(chart.periods) / 2
    for i, period in enumerate(chart.periods):
        out.append(f'<div class="sc-col{" sc-end" if i >= half else ""}">')
        for bar in by_period[period]:
            if bar.spend > 0:
                hover = escape(f"{period} · {bar.series}: {bar.exact}")
                style = f"height:{_percent(bar.spend, top)};background:{colors[bar.series]}"
                out.append(f'<div class="sc-bar" role="img" aria-label="{hover}" style="{style}"></div>')
        if period in marked:
            hover = escape(f"Anomaly: {marked[period].hover}")
            out.append(
                f'<div class="sc-mark" role="img" aria-label="{hover}" '
                f'style="bottom:{_percent(totals[period], top)}">▼</div>'
            )
        out.append("</div>")
    out.append(f'</div><div class="sc-legend"><b>{escape(chart.stack_label)}</b>')
    for name in chart.series:
        out.append(f'<div title="{escape(name)}"><i style="background:{colors[name]}"></i>{escape(name)}</div>')
    out.append('</div><div class="sc-x">')
    out += [f"<span>{escape(p) if i % every == 0 else ''}</span>" for i, p in enumerate(chart.periods)]
    out.append(f'</div><div class="sc-xtitle">{escape(chart.axis_title)}</div></figure>')
    return "".join(out)


# Scoped to the chart; colours from the text colour (light or dark theme) except the bars' own.
_CSS = (
    "<style>"
    ".spend-chart{display:grid;grid-template-columns:auto auto minmax(0,1fr) auto;"
    f"grid-template-rows:{HEIGHT}px auto auto;column-gap:8px;margin:0;padding-top:14px;"
    "font-size:12px;line-height:1.2}"
    ".spend-chart .sc-ytitle{writing-mode:vertical-rl;transform:rotate(180deg);text-align:center;opacity:.75}"
    ".spend-chart .sc-yticks{position:relative;min-width:3em}"
    ".spend-chart .sc-yticks span{position:absolute;right:0;transform:translateY(50%);opacity:.75;"
    "white-space:nowrap}"
    ".spend-chart .sc-plot{position:relative;display:flex;align-items:flex-end;"
    "border-bottom:1px solid rgba(128,128,128,.5)}"
    ".spend-chart .sc-grid{position:absolute;left:0;right:0;border-top:1px solid rgba(128,128,128,.2)}"
    ".spend-chart .sc-col{position:relative;flex:1 1 0;min-width:0;height:100%;display:flex;"
    "flex-direction:column-reverse}"
    ".spend-chart .sc-bar{position:relative;flex:none;margin:0 12%}"
    ".spend-chart .sc-bar:hover{z-index:3;filter:brightness(.85)}"
    f".spend-chart .sc-mark{{position:absolute;left:0;right:0;margin-bottom:2px;text-align:center;"
    f"color:{ANOMALY_COLOR};font-size:16px;line-height:1;cursor:default}}"
    ".spend-chart .sc-mark:hover{z-index:3}"
    ".spend-chart .sc-bar:hover::after,.spend-chart .sc-mark:hover::after{content:attr(aria-label);"
    "position:absolute;bottom:calc(100% + 6px);left:0;z-index:3;width:max-content;max-width:32em;"
    "padding:4px 8px;border:1px solid rgba(128,128,128,.45);border-radius:4px;background:#fff;"
    "color:#1b2430;box-shadow:0 1px 4px rgba(0,0,0,.15);font-size:12px;text-align:left;white-space:normal;"
    "pointer-events:none}"
    ".spend-chart .sc-end .sc-bar:hover::after,.spend-chart .sc-end .sc-mark:hover::after{left:auto;right:0}"
    ".spend-chart .sc-mark:hover::after{top:calc(100% + 4px);bottom:auto}"  # under it: it tops the chart
    ".spend-chart .sc-x{grid-row:2;grid-column:3;display:flex}"
    ".spend-chart .sc-x span{flex:1 1 0;min-width:0;padding-top:4px;writing-mode:vertical-rl;"
    "transform:rotate(180deg);text-align:right;white-space:nowrap;opacity:.75}"
    ".spend-chart .sc-xtitle{grid-row:3;grid-column:3;padding-top:4px;text-align:center;opacity:.75}"
    ".spend-chart .sc-legend{grid-row:1;grid-column:4;padding-left:8px}"
    ".spend-chart .sc-legend b{display:block;margin-bottom:6px;font-weight:600}"
    ".spend-chart .sc-legend div{max-width:16em;margin-bottom:4px;overflow:hidden;text-overflow:ellipsis;"
    "white-space:nowrap}"
    ".spend-chart .sc-legend i{display:inline-block;width:10px;height:10px;margin-right:6px;vertical-align:-1px}"
    "</style>"
)
