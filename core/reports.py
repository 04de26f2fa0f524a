"""Aggregates for charts, tables and ``report``, computed in SQL from the roll-ups.

A period is resolved to quarter hours (the roll-ups' finest grain): its start is
rounded down and its end up to the next quarter hour.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    FromClause,
    Integer,
    and_,
    column,
    func,
    select,
    text,
    true,
    values,
)

from core.models import UsageRollup
from core.rollups import DAY, GRAINS, QUARTER
from core.times import local_midnight, local_periods

DIMENSIONS = ("provider", "model", "user", "project")
NO_USER = "(no user)"
NO_PROJECT = "(no project)"
Where = dict[str, str]  # exact matches on provider, model, user, project


@dataclass(frozen=True)
class Totals:
    """Spend and volume over some set of calls; money exact."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_input: Decimal = Decimal(0)
    cost_output: Decimal = Decimal(0)
    cost_total: Decimal = Decimal(0)
    estimated_calls: int = 0
    estimated_cost: Decimal = Decimal(0)
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0

    @property
    def average_cost(self) -> Decimal:
        return self.cost_total / self.calls if self.calls else Decimal(0)


TOTAL_NAMES = [f.name for f in fields(Totals)]


@dataclass(frozen=True)
class Row:
    """One group of a report: the period (for time groupings), the key, the totals."""

    period: date | None
    key: str | None
    totals: Totals


def segments(start: datetime, end: datetime) -> list[tuple[int, int, int]]:
    """[start, end) as runs of whole buckets: (grain, first bucket, end), finest at the edges.

    Walking up the grain ladder, each edge is covered by the finer grain up to the
    first (or from the last) boundary of the next coarser one; what is left in the
    middle takes the coarsest grain that fits.
    """
    low = _floor(int(start.timestamp()), QUARTER)
    high = -(-int(end.timestamp()) // QUARTER) * QUARTER
    if high <= low:
        return []
    left: list[tuple[int, int, int]] = []
    right: list[tuple[int, int, int]] = []
    for finer, coarser in zip(GRAINS, GRAINS[1:], strict=False):
        inner_low, inner_high = -(-low // coarser) * coarser, _floor(high, coarser)
        if inner_low >= inner_high:  # no whole coarser bucket inside: the finer grain covers the rest
            break
        if low < inner_low:
            left.append((finer, low, inner_low))
        if inner_high < high:
            right.append((finer, inner_high, high))
        low, high = inner_low, inner_high
    else:
        finer = GRAINS[-1]
    return [*left, (finer, low, high), *reversed(right)]


def _floor(value: int, step: int) -> int:
    return value - value % step


def _totals(row) -> Totals:  # type: ignore[no-untyped-def]
    return Totals(
        calls=int(row.calls),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        cached_input_tokens=int(row.cached_input_tokens),
        cost_input=Decimal(row.cost_input),
        cost_output=Decimal(row.cost_output),
        cost_total=Decimal(row.cost_total),
        estimated_calls=int(row.estimated_calls),
        estimated_cost=Decimal(row.estimated_cost),
        cache_write_tokens=int(row.cache_write_tokens),
        cache_write_1h_tokens=int(row.cache_write_1h_tokens),
        reasoning_tokens=int(row.reasoning_tokens),
        web_search_calls=int(row.web_search_calls),
    )


def _dimension(by: str) -> str:
    """The roll-up column a report groups by."""
    if by not in DIMENSIONS:
        raise ValueError(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    return "user_id" if by == "user" else by


def _conditions(source: FromClause, where: Where | None) -> list[ColumnElement[bool]]:
    """Exact matches on roll-up key columns; "no user" / "no project" are stored as ''."""
    conditions = []
    for name, value in (where or {}).items():
        column_name = _dimension(name)
        wanted = "" if value in (NO_USER, NO_PROJECT) else value
        conditions.append(source.c[column_name] == wanted)
    return conditions


def _label(by: str | None, key: str | None) -> str | None:
    if by == "user":
        return key or NO_USER
    if by == "project":
        return key or NO_PROJECT
    return key if by else None


def _grouped(
    engine: Engine, labelled: list[tuple[int, datetime, datetime]], by: str | None, where: Where | None = None
) -> list[tuple[int, str | None, Totals]]:
    """Sum the roll-ups over labelled UTC ranges, grouped by label and an optional dimension."""
    runs = [(label, grain, a, b) for label, start, end in labelled for grain, a, b in segments(start, end)]
    if not runs:
        return []
    seg = (
        values(
            column("label", Integer),
            column("grain", Integer),
            column("lo", BigInteger),
            column("hi", BigInteger),
            name="seg",
        )
        .data(runs)
        .cte("seg")
    )

    def in_run(source: FromClause) -> ColumnElement[bool]:
        return (
            (source.c.grain == seg.c.grain) & (source.c.bucket_start >= seg.c.lo) & (source.c.bucket_start < seg.c.hi)
        )

    table = UsageRollup.__table__
    source: FromClause
    if engine.dialect.name == "postgresql":
        # one primary-key range scan per run: without the OFFSET 0 fence PostgreSQL pulls the
        # subquery up into a hash join that reads the whole table
        source = select(table).where(in_run(table), *_conditions(table, where)).offset(0).lateral("r")
        joined = seg.join(source, true())
    else:  # SQLite already loops over the runs and range-scans the primary key for each
        source = table
        joined = seg.join(source, and_(in_run(source), *_conditions(source, where)))
    group = [seg.c.label]
    if by is not None:
        group.append(source.c[_dimension(by)].label("key"))
    sums = [func.coalesce(func.sum(source.c[name]), 0).label(name) for name in TOTAL_NAMES]
    query = select(*group, *sums).select_from(joined).group_by(*group)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # the planner overestimates these few index scans and would spend more on JIT than on the query
            conn.execute(text("SET LOCAL jit = off"))
        result = conn.execute(query).all()
    return [(row.label, _label(by, row.key if by else None), _totals(row)) for row in result]


def totals(engine: Engine, start: datetime, end: datetime, where: Where | None = None) -> Totals:
    """Everything in [start, end) (matching ``where``)."""
    rows = _grouped(engine, [(0, start, end)], None, where)
    return rows[0][2] if rows else Totals()


def breakdown(engine: Engine, start: datetime, end: datetime, by: str, where: Where | None = None) -> list[Row]:
    """Totals per provider, model, user or project over [start, end), biggest spend first."""
    rows = _grouped(engine, [(0, start, end)], by, where)
    return sorted((Row(None, key, t) for _label, key, t in rows), key=lambda r: (-r.totals.cost_total, r.key or ""))


def over_time(
    engine: Engine,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    granularity: str = "day",
    by: str | None = None,
    where: Where | None = None,
) -> list[Row]:
    """Totals per local day, week or month in ``tz`` (and per provider/model/user/project if ``by``)."""
    periods = local_periods(start, end, tz, granularity)
    labelled = [(i, a, b) for i, (_label, a, b) in enumerate(periods)]
    rows = _grouped(engine, labelled, by, where)
    return sorted(
        (Row(periods[label][0], key, t) for label, key, t in rows),
        key=lambda r: (r.period, -r.totals.cost_total, r.key or ""),
    )


def data_range(engine: Engine) -> tuple[datetime, datetime] | None:
    """First and last day bucket with any call (UTC), or ``None`` when there is no usage."""
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(UsageRollup.bucket_start), func.max(UsageRollup.bucket_start)).where(
                UsageRollup.grain == DAY
            )
        ).one()
    if first is None:
        return None
    return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last + DAY, UTC)


def has_usage(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(UsageRollup.bucket_start).limit(1)).first() is not None


def local_range(
    since: date | None, until: date | None, tz: ZoneInfo, engine: Engine
) -> tuple[datetime, datetime] | None:
    """[since 00:00, until+1 00:00) in ``tz``; open ends cover all recorded usage."""
    span = data_range(engine)
    if span is None and (since is None or until is None):
        return None
    start = local_midnight(since, tz) if since else span[0] - timedelta(days=1)  # type: ignore[index]
    end = local_midnight(until + timedelta(days=1), tz) if until else span[1] + timedelta(days=1)  # type: ignore[index]
    return start, end
