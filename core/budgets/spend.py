"""Spend of a budget's scope over a period, computed from what is stored (never a counter).

Served from the roll-ups through ``core.reports`` (filtered by the scope's key
column), so it stays flat in the number of calls, users and projects. Detection,
which runs after every recorded batch, sums the same roll-up runs
(``reports.segments``) with one small statement whose compiled form is cached
(the report's VALUES list is compiled anew each time, which cost more than the sum).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from core import reports
from core.budgets.models import Budget
from core.budgets.periods import Period
from core.models import UsageRollup

SCOPE_KINDS = ("all", "provider", "model", "user", "project")


def scope_where(budget: Budget) -> dict[str, str] | None:
    """The report filter for a budget's scope (``None``: everything)."""
    if budget.scope_kind == "all" or budget.scope_value is None:
        return None
    return {budget.scope_kind: budget.scope_value}


def spend_in(engine: Engine, budget: Budget, start: datetime, end: datetime) -> Decimal:
    """Exact spend of the budget's scope over [start, end) (ends on quarter hours, as every period's are)."""
    return reports.totals(engine, start, end, where=scope_where(budget)).cost_total


_KEY_COLUMNS = {"provider": "provider", "model": "model", "user": "user_id", "project": "project"}
_MAX_RUNS = 7  # reports.segments: at most three finer runs each side of the coarsest one
_IN_RUNS = " OR ".join(
    f"(grain = :g{i} AND bucket_start >= :lo{i} AND bucket_start < :hi{i})" for i in range(_MAX_RUNS)
)
_STATEMENTS = {
    kind: text(
        f"SELECT COALESCE(SUM(cost_total), 0) AS total FROM usage_rollups WHERE ({_IN_RUNS})"  # noqa: S608 - fixed names
        + (f" AND {column} = :scope" if column else "")
    ).columns(total=UsageRollup.__table__.c.cost_total.type)
    for kind, column in [("all", None), *_KEY_COLUMNS.items()]
}


def rollup_spend(conn: Connection, budget: Budget, start: datetime, end: datetime) -> Decimal:
    """The same sum as ``spend_in``, from the same roll-up runs, by one fixed statement (prepared once)."""
    runs = reports.segments(start, end)
    if not runs:
        return Decimal(0)
    if len(runs) > _MAX_RUNS:
        raise AssertionError(f"{len(runs)} roll-up runs for one period")
    params: dict[str, object] = {}
    for i in range(_MAX_RUNS):
        grain, lo, hi = runs[i] if i < len(runs) else (0, 0, 0)  # an empty run matches nothing
        params.update({f"g{i}": grain, f"lo{i}": lo, f"hi{i}": hi})
    kind = budget.scope_kind if budget.scope_value is not None else "all"
    if kind != "all":
        params["scope"] = budget.scope_value
    total = conn.execute(_STATEMENTS[kind], params).scalar_one()
    return total if isinstance(total, Decimal) else Decimal(total)


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
    with engine.connect() as conn:
        for period in periods:
            amount = rollup_spend(conn, budget, period.start, period.end)
            if amount:
                found[period.start] = amount
    return found
