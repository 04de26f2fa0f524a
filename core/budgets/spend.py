"""Spend of a budget's scope over a period, computed from what is stored (never a counter).

Served from the roll-ups through ``core.reports`` when it can filter by scope;
until then, a sum over ``api_usage_logs`` (indexed by scope column and time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select

from core.budgets.models import Budget
from core.budgets.periods import Period
from core.models import UsageRecord

SCOPE_KINDS = ("all", "provider", "model", "user", "project")
_COLUMNS = {
    "provider": UsageRecord.provider,
    "model": UsageRecord.model,
    "user": UsageRecord.user_id,
    "project": UsageRecord.project,
}


def scope_where(budget: Budget) -> dict[str, str] | None:
    """The report filter for a budget's scope (``None``: everything)."""
    if budget.scope_kind == "all" or budget.scope_value is None:
        return None
    return {budget.scope_kind: budget.scope_value}


def spend_in(engine: Engine, budget: Budget, start: datetime, end: datetime) -> Decimal:
    """Exact spend of the budget's scope over [start, end)."""
    query = select(func.coalesce(func.sum(UsageRecord.cost_total), 0)).where(
        UsageRecord.timestamp >= start, UsageRecord.timestamp < end
    )
    where = scope_where(budget)
    if where:
        ((kind, value),) = where.items()
        query = query.where(_COLUMNS[kind] == value)
    with engine.connect() as conn:
        total = conn.execute(query).scalar_one()
    return Decimal(total) if not isinstance(total, Decimal) else total


def spend_by_period(engine: Engine, budget: Budget, periods: Sequence[Period]) -> dict[datetime, Decimal]:
    """Spend per period (keyed by the period's UTC start); periods without spend are left out."""
    found: dict[datetime, Decimal] = {}
    for period in periods:
        amount = spend_in(engine, budget, period.start, period.end)
        if amount:
            found[period.start] = amount
    return found
