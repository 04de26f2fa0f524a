"""What the Budgets page shows of enforced budgets: denials this period, and the subjects closest to the amount.

Never a list of every user: the top N by spend come from the roll-ups (``aggregates.breakdown``
with a limit), and a search ranks the matching names by the roll-ups' day rows of the period, then
sums the exact spend of the first few.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from core.budgets import service as budgets
from core.budgets.periods import Period
from core.limits import service, store
from core.storage.budget_tables import Budget
from core.times import now_utc


@dataclass(frozen=True)
class EnforcedRow:
    budget: Budget
    name: str
    scope: str
    amount: Decimal
    period: Period
    denied: int  # checks denied by this budget this period


@dataclass(frozen=True)
class SubjectRow:
    subject: str
    spend: Decimal
    amount: Decimal
    denied: int

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.spend

    @property
    def percent(self) -> Decimal:
        return (self.spend * 100 / self.amount).quantize(Decimal("0.1"))


def enforced(engine: Engine, now: datetime | None = None) -> list[EnforcedRow]:
    moment = now or now_utc()
    chosen = service.enforced_budgets(engine)
    periods = {b.id: service.current_period(b, moment) for b in chosen}
    with engine.connect() as conn:
        counts = store.denials(conn, {i: p.start for i, p in periods.items()})
    return [EnforcedRow(b, b.name, b.scope, b.amount, periods[b.id], counts.get(b.id, 0)) for b in chosen]


def closest_subjects(
    engine: Engine, budget: Budget, search: str | None = None, limit: int = 10, now: datetime | None = None
) -> list[SubjectRow]:
    """An each: budget's users (projects) with the most spend this period; ``search``: those whose name contains it."""
    period = service.current_period(budget, now or now_utc())
    if search and search.strip():
        with engine.connect() as conn:
            found = store.subjects_matching(
                conn, budget.id, str(budget.scope_value), period.start, period.end, search.strip(), limit + 10
            )
        ranked = budgets.spend_of_subjects(engine, budget, period, found)[:limit]
    else:
        ranked = budgets.subject_spend(engine, budget, period, limit)
    with engine.connect() as conn:
        denied = store.denied_of(conn, budget.id, period.start, [s for s, _ in ranked])
    return [SubjectRow(s, spend, budget.amount, denied.get(s, 0)) for s, spend in ranked]
