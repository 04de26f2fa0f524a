"""What ``/metrics`` exposes of the recorded calls, read in SQL from the roll-ups and the errors index.

The roll-ups keep all-time sums per provider and model (the day grain of ``usage_rollups``)
but not the call's status. Calls whose status is not ``ok`` are rare and sit in the partial
index ``ix_usage_errors`` (migration 0014); they are summed from the log through it, and the
``ok`` figures are the roll-up sums less theirs. So a scrape reads a few thousand roll-up rows
plus the error calls, whatever the number of calls.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, func, select

from core.recording.rollups import ALL_MODELS, DAY
from core.reporting.metrics import UsageFigure
from core.storage.tables import NOT_OK, UsageRecord, UsageRollup

COUNTED = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _figure(provider: str, model: str, status: str, sums: dict[str, int], cost: Decimal) -> UsageFigure:
    return UsageFigure(provider=provider, model=model, status=status, cost_usd=cost, **sums)


def usage_figures(engine: Engine) -> tuple[list[UsageFigure], int]:
    """Per provider, model and status, all time; and the number of calls priced at the estimate."""
    rollup = UsageRollup.__table__
    logs = UsageRecord.__table__
    totals_query = (
        select(
            rollup.c.provider,
            rollup.c.model,
            *[func.sum(rollup.c[name]).label(name) for name in COUNTED],
            func.sum(rollup.c.cost_total).label("cost_total"),
            func.sum(rollup.c.estimated_calls).label("estimated_calls"),
        )
        .where(rollup.c.grain == DAY, rollup.c.model != ALL_MODELS)
        .group_by(rollup.c.provider, rollup.c.model)
    )
    errors_query = (
        select(
            logs.c.status,
            logs.c.provider,
            logs.c.model,
            func.count().label("calls"),
            *[func.sum(logs.c[name]).label(name) for name in COUNTED[1:]],
            func.sum(logs.c.cost_total).label("cost_total"),
        )
        .where(NOT_OK)  # the predicate of ix_usage_errors, so the planner reads that index
        .group_by(logs.c.status, logs.c.provider, logs.c.model)
    )
    with engine.connect() as conn:
        totals = conn.execute(totals_query).all()
        errors = conn.execute(errors_query).all()
    figures: list[UsageFigure] = []
    not_ok: dict[tuple[str, str], tuple[dict[str, int], Decimal]] = {}
    for row in errors:
        sums = {name: int(getattr(row, name) or 0) for name in COUNTED}
        cost = Decimal(row.cost_total or 0)
        figures.append(_figure(row.provider, row.model, row.status, sums, cost))
        seen, seen_cost = not_ok.get((row.provider, row.model), ({name: 0 for name in COUNTED}, Decimal(0)))
        not_ok[(row.provider, row.model)] = ({n: seen[n] + sums[n] for n in COUNTED}, seen_cost + cost)
    unpriced = 0
    for row in totals:
        unpriced += int(row.estimated_calls or 0)
        less, less_cost = not_ok.get((row.provider, row.model), ({name: 0 for name in COUNTED}, Decimal(0)))
        sums = {name: int(getattr(row, name) or 0) - less[name] for name in COUNTED}
        if sums["calls"] > 0:
            figures.append(_figure(row.provider, row.model, "ok", sums, Decimal(row.cost_total) - less_cost))
    figures.sort(key=lambda f: (f.provider, f.model, f.status))
    return figures, unpriced
