"""Spend of a budget's scope over a period, computed from what is stored (never a counter).

Served from the roll-ups through ``core.reporting.aggregates`` (filtered by the scope's key
column), so it stays flat in the number of calls, users and projects, and never
depends on how the roll-up tables are laid out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.budgets.periods import Period
from core.reporting import aggregates as reports
from core.storage.budget_tables import Budget

SCOPE_KINDS = ("all", "provider", "model", "user", "project", "tag")  # tag: calls carrying that tag


def scope_where(budget: Budget) -> dict[str, str] | None:
    """The report filter for a budget's scope (``None``: everything)."""
    if budget.scope_kind == "all" or budget.scope_value is None:
        return None
    return {budget.scope_kind: budget.scope_value}


def spend_in(engine: Engine, budget: Budget, start: datetime, end: datetime) -> Decimal:
    """Exact spend of the budget's scope over [start, end) (ends on quarter hours, as every period's are)."""
    return reports.totals(engine, start, end, where=scope_where(budget)).cost_total


def spend_by_period(engine: Engine, budget: Budget, periods: Sequence[Period]) -> dict[datetime, Decimal]:
    """Spend per period (keyed by the period's UTC start); periods without spend are left out."""
    if len(periods) > 12:  # a long history (a full reconcile): one report query for all of them
        wanted = {p.label: p.start for p in periods}
        rows = reports.over_time(
            engine,
            min(p.start for p in periods),
            max(p.end for p in periods),
            ZoneInfo(budget.tz),
            budget.period,
            where=scope_where(budget),
        )
        return {wanted[r.period]: r.totals.cost_total for r in rows if r.period in wanted and r.totals.cost_total}
    found: dict[datetime, Decimal] = {}
    for period in periods:
        amount = spend_in(engine, budget, period.start, period.end)
        if amount:
            found[period.start] = amount
    return found
