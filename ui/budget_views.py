"""Budgets page pieces: pure text and a burn-up figure, from service results (no database here)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from core.budgets.service import BudgetStatus, EventRow
from core.money import format_total, to_text
from core.notify.delivery import shown_error

STATUS_LABELS = {
    "pending": "waiting to send",
    "delivered": "delivered",
    "failed": "failed (retries used up)",
    "disabled": "webhook disabled (HTTP 410)",
    "no_webhook": "recorded (no webhook)",
}


MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:")


def plain(text: str) -> str:
    """User text (a budget name, a scope) shown literally inside Markdown."""
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in text)


def percent_text(percent: Decimal) -> str:
    """``60%``, ``62.5%``: no trailing zeros."""
    return f"{to_text(percent)}%"


def resets_text(period_end: datetime, now: datetime, tz_name: str) -> str:
    """``resets in 3 days at 00:00 Europe/Berlin`` (hours and minutes when less than a day is left)."""
    local = period_end.astimezone(ZoneInfo(tz_name))
    seconds = max(int((period_end - now).total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    if days >= 2:
        left = f"{days} days"
    elif days == 1:
        left = "1 day"
    elif rest >= 3600:
        left = f"{rest // 3600} h {rest % 3600 // 60} min"
    else:
        left = f"{rest // 60} min"
    return f"resets in {left} at {local:%H:%M} {tz_name}" + (f" ({local:%a %d %b})" if days >= 1 else "")


def marks_text(status: BudgetStatus) -> str:
    """Each threshold with a check once it fired in this period."""
    fired = set(status.crossed)
    return " · ".join(f"{t}% {'✓' if t in fired else '○'}" for t in status.budget.threshold_list)


def projection_text(status: BudgetStatus, tz_name: str) -> str:
    period_word = {"day": "day", "week": "week", "month": "month"}[status.budget.period]
    if status.projected is None:
        return f"Projection shown once a tenth of the {period_word} has passed."
    text = f"Projected end-of-{period_word} spend: {format_total(status.projected)}"
    if status.projected_exceed_at is not None:
        local = status.projected_exceed_at.astimezone(ZoneInfo(tz_name))
        text += f" — on pace to exceed the budget on {local:%a %d %b %H:%M} {tz_name}"
    elif status.projected > status.budget.amount:
        text += " — over the budget"
    return text


def progress_value(status: BudgetStatus) -> float:
    """The bar's fill, 0..1 (display only; the figures shown are exact)."""
    return float(min(max(status.percent / 100, Decimal(0)), Decimal(1)))


def burnup_figure(status: BudgetStatus, series: list[tuple[datetime, Decimal]], now: datetime) -> go.Figure:
    """Cumulative spend, the budget line, the even pace to it, and the projection (dashed)."""
    tz = ZoneInfo(status.budget.tz)
    start, end = status.period.start.astimezone(tz), status.period.end.astimezone(tz)
    amount = float(status.budget.amount)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[t.astimezone(tz) for t, _ in series],
            y=[float(v) for _, v in series],
            mode="lines",
            name="spend",
            line={"width": 3},
        )
    )
    fig.add_trace(go.Scatter(x=[start, end], y=[amount, amount], mode="lines", name="budget", line={"color": "red"}))
    fig.add_trace(
        go.Scatter(x=[start, end], y=[0, amount], mode="lines", name="even pace", line={"dash": "dot", "color": "gray"})
    )
    if status.projected is not None and series:
        last_t, last_v = series[-1]
        fig.add_trace(
            go.Scatter(
                x=[last_t.astimezone(tz), end],
                y=[float(last_v), float(status.projected)],
                mode="lines",
                name="projection",
                line={"dash": "dash"},
            )
        )
    for t in status.budget.threshold_list:
        if t < 100:
            fig.add_hline(y=amount * t / 100, line={"dash": "dot", "width": 1, "color": "orange"}, opacity=0.5)
    fig.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        yaxis_title="USD",
        xaxis_title=f"{status.budget.tz} time",
        legend={"orientation": "h"},
    )
    return fig


def history_rows(rows: list[EventRow], tz_name: str, admin: bool = False) -> list[dict[str, object]]:
    """The alert history; viewers see the kind of a delivery error, the admin its network detail."""
    tz = ZoneInfo(tz_name)

    def local(moment: datetime | None) -> str:
        return "" if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"

    return [
        {
            "Found": local(r.created_at),
            "Budget": r.budget_name,
            # the period in the budget's own zone: a Berlin December starts 2026-12-01 00:00 there
            "Period from": f"{r.period_start.astimezone(ZoneInfo(r.tz)):%Y-%m-%d %H:%M} ({r.tz})",
            "Threshold": f"{r.threshold}%",
            "Spend then": format_total(r.spend),
            "Budget amount": format_total(r.amount),
            "Late": "late" if r.late else "",
            "Delivery": STATUS_LABELS.get(r.status, r.status),
            "Attempts": r.attempts,
            "Next attempt": local(r.next_attempt_at),
            "Delivered": local(r.delivered_at),
            "Last error": (r.last_error if admin else shown_error(r.last_error)) or "",
            "webhook-id": r.webhook_id,
        }
        for r in rows
    ]
