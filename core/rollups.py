"""Roll-ups: usage totals per bucket, kept in step with the logs.

Each call adds to three buckets, a quarter hour, an hour and a UTC day, keyed by
provider, model and user. Any period whose ends fall on quarter hours (every
local day, week or month, in every time zone) is an exact sum of at most five
runs of buckets: quarters up to the first whole hour, hours up to the first
whole day, days, then hours and quarters again. So reports read few rows
whatever the number of calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from core.db import run_write
from core.models import UsageRecord, UsageRollup
from core.money import from_pico

QUARTER, HOUR, DAY = 900, 3600, 86400
GRAINS = (QUARTER, HOUR, DAY)
SUM_COLUMNS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_input",
    "cost_output",
    "cost_total",
    "estimated_calls",
    "estimated_cost",
)
MONEY_COLUMNS = frozenset({"cost_input", "cost_output", "cost_total", "estimated_cost"})


@dataclass(frozen=True)
class RolledCall:
    """What a roll-up needs of one stored call; costs in whole pico-dollars."""

    epoch: int
    provider: str
    model: str
    user_id: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_input: int
    cost_output: int
    cost_total: int
    estimated: bool


def aggregate(calls: Iterable[RolledCall]) -> dict[tuple[int, int, str, str, str], list[int]]:
    """Sum calls into roll-up keys (grain, bucket, provider, model, user); values in SUM_COLUMNS order."""
    totals: dict[tuple[int, int, str, str, str], list[int]] = {}
    for call in calls:
        user = call.user_id or ""
        for grain in GRAINS:
            key = (grain, call.epoch - call.epoch % grain, call.provider, call.model, user)
            row = totals.get(key)
            if row is None:
                row = totals[key] = [0] * 9
            row[0] += 1
            row[1] += call.input_tokens
            row[2] += call.output_tokens
            row[3] += call.cached_input_tokens
            row[4] += call.cost_input
            row[5] += call.cost_output
            row[6] += call.cost_total
            if call.estimated:
                row[7] += 1
                row[8] += call.cost_total
    return totals


def _insert_for(conn: Connection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def add_to_rollups(conn: Connection, totals: dict[tuple[int, int, str, str, str], list[int]]) -> None:
    """Upsert summed deltas, in key order (so concurrent writers on PostgreSQL lock rows in one order)."""
    if not totals:
        return
    rows = []
    for key in sorted(totals):
        values = totals[key]
        row: dict[str, object] = dict(zip(("grain", "bucket_start", "provider", "model", "user_id"), key, strict=True))
        for name, value in zip(SUM_COLUMNS, values, strict=True):
            row[name] = from_pico(value) if name in MONEY_COLUMNS else value
        rows.append(row)
    insert = _insert_for(conn)(UsageRollup)
    table = UsageRollup.__table__
    statement = insert.on_conflict_do_update(
        index_elements=["grain", "bucket_start", "provider", "model", "user_id"],
        set_={name: table.c[name] + insert.excluded[name] for name in SUM_COLUMNS},
    )
    conn.execute(statement, rows)


def rebuild_rollups(engine: Engine, batch_size: int = 50_000) -> int:
    """Recompute every roll-up from the logs in one transaction; returns the calls read."""

    def work(conn: Connection) -> int:
        conn.execute(delete(UsageRollup))
        count = 0
        last_id = 0
        while True:
            rows = conn.execute(
                select(
                    UsageRecord.id,
                    UsageRecord.timestamp,
                    UsageRecord.provider,
                    UsageRecord.model,
                    UsageRecord.user_id,
                    UsageRecord.input_tokens,
                    UsageRecord.output_tokens,
                    UsageRecord.cached_input_tokens,
                    UsageRecord.cost_input,
                    UsageRecord.cost_output,
                    UsageRecord.cost_total,
                    UsageRecord.matched_by,
                )
                .where(UsageRecord.id > last_id)
                .order_by(UsageRecord.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return count
            add_to_rollups(conn, aggregate(rolled_from_row(row) for row in rows))
            count += len(rows)
            last_id = rows[-1].id

    return run_write(engine, work)


def rolled_from_row(row) -> RolledCall:  # type: ignore[no-untyped-def]
    from core.money import to_pico

    return RolledCall(
        int(row.timestamp.timestamp()),
        row.provider,
        row.model,
        row.user_id,
        row.input_tokens,
        row.output_tokens,
        row.cached_input_tokens,
        to_pico(row.cost_input),
        to_pico(row.cost_output),
        to_pico(row.cost_total),
        row.matched_by == "estimate",
    )


@dataclass(frozen=True)
class RollupCheck:
    matches: bool
    raw: dict[str, Decimal | int]
    rolled: dict[str, Decimal | int]


def check_rollups(engine: Engine) -> RollupCheck:
    """Compare each grain's totals (and every bucket of the day grain) with raw sums of the logs."""
    raw_columns = [
        func.count(),
        func.coalesce(func.sum(UsageRecord.input_tokens), 0),
        func.coalesce(func.sum(UsageRecord.output_tokens), 0),
        func.coalesce(func.sum(UsageRecord.cached_input_tokens), 0),
        func.coalesce(func.sum(UsageRecord.cost_input), literal(Decimal(0), UsageRecord.cost_input.type)),
        func.coalesce(func.sum(UsageRecord.cost_output), literal(Decimal(0), UsageRecord.cost_output.type)),
        func.coalesce(func.sum(UsageRecord.cost_total), literal(Decimal(0), UsageRecord.cost_total.type)),
    ]
    names = SUM_COLUMNS[:7]
    with engine.connect() as conn:
        raw_row = conn.execute(select(*raw_columns)).one()
        raw = dict(
            zip(
                names,
                (Decimal(v) if n in MONEY_COLUMNS else int(v) for n, v in zip(names, raw_row, strict=True)),
                strict=True,
            )
        )
        matches = True
        rolled: dict[str, Decimal | int] = {}
        for grain in GRAINS:
            cols = [func.coalesce(func.sum(getattr(UsageRollup, n)), 0) for n in names]
            row = conn.execute(select(*cols).where(UsageRollup.grain == grain)).one()
            values = {n: (Decimal(v) if n in MONEY_COLUMNS else int(v)) for n, v in zip(names, row, strict=True)}
            if grain == DAY:
                rolled = values
            matches = matches and values == raw
        # per-day detail: the day buckets equal the raw sums of the same UTC day, key by key
        day_rows = conn.execute(
            select(
                UsageRollup.bucket_start,
                UsageRollup.provider,
                UsageRollup.model,
                UsageRollup.user_id,
                UsageRollup.calls,
                UsageRollup.cost_total,
            ).where(UsageRollup.grain == DAY)
        ).all()
        rolled_days = {(r.bucket_start, r.provider, r.model, r.user_id): (r.calls, r.cost_total) for r in day_rows}
    raw_days: dict[tuple[int, str, str, str], list] = {}
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=50_000).execute(
            select(
                UsageRecord.timestamp,
                UsageRecord.provider,
                UsageRecord.model,
                UsageRecord.user_id,
                UsageRecord.cost_total,
            )
        ):
            epoch = int(r.timestamp.timestamp())
            key = (epoch - epoch % DAY, r.provider, r.model, r.user_id or "")
            entry = raw_days.setdefault(key, [0, Decimal(0)])
            entry[0] += 1
            entry[1] += r.cost_total
    matches = matches and rolled_days == {k: (v[0], v[1]) for k, v in raw_days.items()}
    return RollupCheck(matches, raw, rolled)


def epoch_of(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())
