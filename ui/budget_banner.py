"""A budget at or past a threshold, shown at the top of a page (the Overview)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import Engine

from core.budgets.service import alerting
from core.money import format_total
from ui.budget_views import percent_text, plain


def render(engine: Engine) -> None:
    """One warning per budget past a threshold in its current period; nothing when none is."""
    try:
        statuses = alerting(engine)
    except Exception:  # noqa: BLE001 - a banner never breaks the page it sits on
        return
    for s in statuses:
        b = s.budget
        end = s.period.end.astimezone(ZoneInfo(b.tz))
        icon = ":material/error:" if s.spend >= b.amount else ":material/warning:"
        st.warning(
            f"Budget **{plain(b.name)}** ({plain(b.scope)}): "
            f"{format_total(s.spend)} of {format_total(b.amount)} this {b.period} "
            f"({percent_text(s.percent)}, past {max(s.crossed)}%); resets {end:%a %d %b %H:%M} {b.tz}. "
            "See [Budgets](/budgets).",
            icon=icon,
        )
