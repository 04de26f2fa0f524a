"""The Reconciliation page's pieces: a chart and tables built from report rows; pure, tested without Streamlit."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import plotly.graph_objects as go

from core.money import format_total, format_usd, to_text
from core.reconcile.report import ReconcileRow, out_of_tolerance_first

BILLED_COLOR = "#1f77b4"
COMPUTED_COLOR = "#2ca02c"
DRIFT_FILL = "rgba(214, 39, 40, 0.22)"
DRIFT_COLOR = "#d62728"
STATUS_WORDS = {
    "match": "match",
    "under": "under: computed below the bill",
    "over": "over: computed above the bill",
    "not_billed": "not billed: calls logged, nothing billed",
    "no_report": "no report: day not fetched",
}


def per_day(rows: list[ReconcileRow]) -> list[tuple[date, Decimal | None, Decimal, bool]]:
    """(day, billed summed over providers or None when no bill at all, computed, any drift) per day."""
    billed: dict[date, Decimal | None] = {}
    computed: dict[date, Decimal] = defaultdict(Decimal)
    drift: dict[date, bool] = defaultdict(bool)
    for row in rows:
        computed[row.day] += row.computed
        if row.billed is not None:
            billed[row.day] = (billed.get(row.day) or Decimal(0)) + row.billed
        else:
            billed.setdefault(row.day, None)
        drift[row.day] = drift[row.day] or row.drifts
    return [(day, billed[day], computed[day], drift[day]) for day in sorted(computed)]


def billed_vs_computed_figure(rows: list[ReconcileRow]) -> go.Figure:
    """Billed and computed per UTC day as two lines; the gap between them shaded, drifting days marked."""
    days = per_day(rows)
    x = [d.isoformat() for d, *_ in days]
    billed = [float(b) if b is not None else None for _d, b, _c, _x in days]
    computed = [float(c) for _d, _b, c, _x in days]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=x,
            y=billed,
            name="billed (provider)",
            mode="lines+markers",
            line={"color": BILLED_COLOR, "width": 2},
            hovertext=[format_usd(b) if b is not None else "not fetched" for _d, b, _c, _x in days],
            hovertemplate="%{x}: billed %{hovertext}<extra></extra>",
            connectgaps=False,
        )
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=computed,
            name="computed (logged calls)",
            mode="lines+markers",
            line={"color": COMPUTED_COLOR, "width": 2, "dash": "dot"},
            fill="tonexty",  # the drift: the area between the bill and the computed cost
            fillcolor=DRIFT_FILL,
            hovertext=[format_usd(c) for _d, _b, c, _x in days],
            hovertemplate="%{x}: computed %{hovertext}<extra></extra>",
        )
    )
    drifting = [(d, b, c) for d, b, c, drift in days if drift]
    if drifting:
        figure.add_trace(
            go.Scatter(
                x=[d.isoformat() for d, _b, _c in drifting],
                y=[float(b if b is not None else c) for _d, b, c in drifting],
                name="out of tolerance",
                mode="markers",
                marker={"color": DRIFT_COLOR, "size": 11, "symbol": "x"},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=340,
        legend={"orientation": "h", "y": 1.12},
        yaxis={"title": "USD per UTC day", "rangemode": "tozero"},
        xaxis={"type": "date"},
    )
    return figure


def _pct(value: Decimal | None) -> str:
    return "" if value is None else f"{value}%"


def day_table(rows: list[ReconcileRow]) -> list[dict[str, object]]:
    """Rows out of tolerance first (largest gap first), then the rest by day; money exact as text."""
    out = []
    for row in out_of_tolerance_first(rows):
        out.append(
            {
                "day": row.day.isoformat(),
                "provider": row.provider,
                "billed": format_total(row.billed) if row.billed is not None else "not fetched",
                "computed": format_total(row.computed),
                "delta": format_total(row.delta) if row.delta is not None else "",
                "delta %": _pct(row.delta_pct),
                "status": STATUS_WORDS[row.status],
                "likely cause": row.cause,
                "billed (exact)": to_text(row.billed) if row.billed is not None else "",
                "computed (exact)": to_text(row.computed),
            }
        )
    return out


def _tokens(value: int | None) -> str:
    return "not fetched" if value is None else f"{value:,}"


def model_table(rows: list[ReconcileRow]) -> list[dict[str, object]]:
    """A day opened by model: money and token counts side by side, and the likely cause in words."""
    out = []
    for row in out_of_tolerance_first(rows):
        out.append(
            {
                "provider": row.provider,
                "model": row.model or "",
                "billed": format_total(row.billed) if row.billed is not None else "not fetched",
                "computed": format_total(row.computed),
                "delta": format_total(row.delta) if row.delta is not None else "",
                "billed input tokens": _tokens(row.billed_input_tokens),
                "logged input tokens": f"{row.logged_input_tokens:,}",
                "billed output tokens": _tokens(row.billed_output_tokens),
                "logged output tokens": f"{row.logged_output_tokens:,}",
                "status": STATUS_WORDS[row.status],
                "likely cause": row.cause,
            }
        )
    return out


def coverage_text(share: Decimal | None) -> str:
    if share is None:
        return "no bill"
    return f"{(share * 100).quantize(Decimal('0.1'))}%"


def fetch_command(provider: str, today: date, days: int = 31) -> str:
    since = (today - timedelta(days=days - 1)).isoformat()
    return f"python -m core reconcile fetch --provider {provider} --since {since}"
