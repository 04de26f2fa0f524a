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
EACH = ("user", "project")  # ``each:user`` / ``each:project``: the amount applies to every one on its own


def scope_where(budget: Budget, subject: str | None = None) -> dict[str, str] | None:
    """The report filter for a budget's scope (``None``: everything); an ``each:`` budget's for one subject."""
    if budget.scope_kind == "each":
        if subject is None:
            raise ValueError(f"budget {budget.name!r} is {budget.scope}: its spend is per subject")
        return {str(budget.scope_value): subject}
    if budget.scope_kind == "all" or budget.scope_value is None:
        return None
    return {budget.scope_kind: budget.scope_value}


def spend_in(engine: Engine, budget: Budget, start: datetime, end: datetime, subject: str | None = None) -> Decimal:
    """Exact spend of the budget's scope (an ``each:`` budget's subject) over [start, end) (quarter-hour ends)."""
    return reports.totals(engine, start, end, where=scope_where(budget, subject)).cost_total


def spend_by_subject(engine: Engine, budget: Budget, start: datetime, end: datetime) -> dict[str, Decimal]:
    """An ``each:`` budget's spend per user (project) over [start, end); calls naming none are left out."""
    dimension = str(budget.scope_value)
    rows = reports.breakdown(engine, start, end, dimension)
    missing = reports.NO_USER if dimension == "user" else reports.NO_PROJECT
    return {r.key: r.totals.cost_total for r in rows if r.key and r.key != missing and r.totals.cost_total}


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
