"""Roll-ups: usage totals per bucket, kept in step with the logs, sized by what reports read.

The time series (``usage_rollups``): each call adds to four buckets, a quarter hour, an
hour, six hours and a UTC day, keyed by provider and model. Any period whose ends fall
on quarter hours (every local day, week or month, in every time zone) is an exact sum
of at most seven runs of buckets: quarters up to the first whole hour, hours up to the
first whole six hours, those up to the first whole day, days, then back down.

Users, projects and tags (``usage_entity_rollups``): one row per user, project or tag, per
UTC day and per 7-day block, and per six hours for tags (a call adds to each of its tags; an
untagged call to no tag); reports add or subtract the raw logs between a period's ends and the
nearest UTC midnight (the nearest six hours for tags). Keying the series by user too made the roll-ups grow
with users x models x quarter hours (four rows per call at 10,000 users).

Tags by provider and model (``usage_tag_rollups``): one row per tag, UTC day (and 7-day block),
provider and model, so a chart or table by provider or model with one tag picked reads a few rows
per day, not every call of the tag. Kept wherever the entity roll-ups' tags are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    values,
)
from sqlalchemy.dialects import postgresql, sqlite

from core.storage.engine import run_write
from core.storage.tables import EntityRollup, UsageRecord, UsageRollup
from core.storage.tag_tables import CallTag, TagRollup

QUARTER, HOUR, SIX_HOURS, DAY, WEEK = 900, 3600, 21600, 86400, 7 * 86400
GRAINS = (QUARTER, HOUR, SIX_HOURS, DAY)  # ascending; each divides the next
ENTITY_GRAINS = (DAY, WEEK)  # per user / project; weeks start on epoch Thursdays, any alignment is exact
# per tag also six hours: a period in a zone off UTC by hours reads at most 3 raw hours at each end,
# not up to 12 (1,000 tags: the raw edges of a report by tag in Asia/Kolkata were most of its time)
TAG_GRAINS = (SIX_HOURS, DAY, WEEK)
ENTITY_DIMENSIONS = ("user", "project", "tag")
ALL_MODELS = ""  # the series' model for a provider's total over all its models
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
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "web_search_calls",
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
    project: str | None = None
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    tags: tuple[str, ...] = ()


RollupKey = tuple[int, int, str, str, str, str, tuple[str, ...]]  # grain, bucket, provider, model, user, project, tags


def aggregate(calls: Iterable[RolledCall]) -> dict[RollupKey, list[int]]:
    """Sum calls into roll-up keys (grain, bucket, provider, model, user, project, tags); values in SUM_COLUMNS order.

    Each call is added to its quarter only; hours and days are then summed from the
    quarters, which are far fewer than the calls in a busy batch.
    """
    quarters: dict[tuple[int, str, str, str, str, tuple[str, ...]], list[int]] = {}
    width = len(SUM_COLUMNS)
    for call in calls:
        key = (
            call.epoch - call.epoch % QUARTER,
            call.provider,
            call.model,
            call.user_id or "",
            call.project or "",
            call.tags,
        )
        row = quarters.get(key)
        if row is None:
            row = quarters[key] = [0] * width
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
        row[9] += call.cache_write_tokens
        row[10] += call.cache_write_1h_tokens
        row[11] += call.reasoning_tokens
        row[12] += call.web_search_calls
    totals: dict[RollupKey, list[int]] = {}
    for (bucket, provider, model, user, project, tags), sums in quarters.items():
        totals[(QUARTER, bucket, provider, model, user, project, tags)] = sums
        for grain in GRAINS[1:]:
            key5 = (grain, bucket - bucket % grain, provider, model, user, project, tags)
            row = totals.get(key5)
            if row is None:
                totals[key5] = list(sums)
            else:
                for i, value in enumerate(sums):
                    row[i] += value
    return totals


def _insert_for(conn: Connection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _money(pico: int) -> Decimal:
    """Exact Decimal for binding (not normalised: the column type stores the same value either way)."""
    return Decimal(pico).scaleb(-12)


KEY_COLUMNS = ("grain", "bucket_start", "provider", "model")
ROW_COLUMNS = KEY_COLUMNS + SUM_COLUMNS
ENTITY_KEY_COLUMNS = ("dimension", "grain", "bucket_start", "entity")
ENTITY_ROW_COLUMNS = ENTITY_KEY_COLUMNS + SUM_COLUMNS
TAG_KEY_COLUMNS = ("tag", "grain", "bucket_start", "provider", "model")
MONEY_POSITIONS = tuple(i for i, name in enumerate(SUM_COLUMNS) if name in MONEY_COLUMNS)


def _add(target: dict, key: tuple, sums: list[int]) -> None:
    row = target.get(key)
    if row is None:
        target[key] = list(sums)
    else:
        for i, value in enumerate(sums):
            row[i] += value


SplitTotals = tuple[
    dict[tuple[int, int, str, str], list[int]],
    dict[tuple[str, int, int, str], list[int]],
    dict[tuple[str, int, int, str, str], list[int]],
]


def split_totals(totals: dict[RollupKey, list[int]]) -> SplitTotals:
    """Deltas keyed as :func:`aggregate` gives them, summed into series, entity and tag roll-up keys."""
    series: dict[tuple[int, int, str, str], list[int]] = {}
    entities: dict[tuple[str, int, int, str], list[int]] = {}
    tagged: dict[tuple[str, int, int, str, str], list[int]] = {}
    for (grain, bucket, provider, model, user, project, tags), sums in totals.items():
        _add(series, (grain, bucket, provider, model), sums)
        _add(series, (grain, bucket, provider, ALL_MODELS), sums)
        if grain == SIX_HOURS:
            for tag in tags:
                _add(entities, ("tag", SIX_HOURS, bucket, tag), sums)
        if grain == DAY:
            for entity_grain in ENTITY_GRAINS:
                start = bucket - bucket % entity_grain
                _add(entities, ("user", entity_grain, start, user), sums)
                _add(entities, ("project", entity_grain, start, project), sums)
                for tag in tags:
                    _add(entities, ("tag", entity_grain, start, tag), sums)
                    _add(tagged, (tag, entity_grain, start, provider, model), sums)
    return series, entities, tagged


def _upsert_rows(conn: Connection, model: type, keys: tuple[str, ...], totals: dict) -> None:
    """Upsert summed deltas in one executemany, in key order (concurrent PostgreSQL writers lock rows in one order)."""
    if not totals:
        return
    rows = []
    money = _money
    columns = keys + SUM_COLUMNS
    for key in sorted(totals):
        values: list[int | Decimal] = list(totals[key])
        for i in MONEY_POSITIONS:
            values[i] = money(totals[key][i])
        rows.append(dict(zip(columns, key + tuple(values), strict=True)))
    insert = _insert_for(conn)(model)
    table = model.__table__  # type: ignore[attr-defined]
    statement = insert.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + insert.excluded[name] for name in SUM_COLUMNS},
    )
    conn.execute(statement, rows)


def add_to_rollups(conn: Connection, totals: dict[RollupKey, list[int]]) -> None:
    """Add deltas (as :func:`aggregate` sums them, or differences of two) to the series, entity and tag roll-ups."""
    series, entities, tagged = split_totals(totals)
    _upsert_rows(conn, UsageRollup, KEY_COLUMNS, series)
    _upsert_rows(conn, EntityRollup, ENTITY_KEY_COLUMNS, entities)
    _upsert_rows(conn, TagRollup, TAG_KEY_COLUMNS, tagged)


def _epoch_seconds(conn: Connection):  # type: ignore[no-untyped-def]
    """The stored timestamp as whole UTC epoch seconds, floored, in the database's own SQL."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", UsageRecord.timestamp), BigInteger)
    return cast(func.floor(func.extract("epoch", UsageRecord.timestamp)), BigInteger)


def _sums(source: Any) -> list[Any]:
    """The roll-up sums of stored log rows (``source`` is the log table or an alias of it)."""
    estimated = source.c.matched_by == "estimate"
    return [
        func.count().label("calls"),
        *[
            func.sum(source.c[name]).label(name)
            for name in (
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cost_input",
                "cost_output",
                "cost_total",
            )
        ],
        func.sum(case((estimated, 1), else_=0)).label("estimated_calls"),
        func.sum(case((estimated, source.c.cost_total), else_=0)).label("estimated_cost"),
        *[
            func.sum(source.c[name]).label(name)
            for name in ("cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls")
        ],
    ]


def _upsert_from(conn: Connection, model: type, keys: tuple[str, ...], query: Any) -> None:
    insert = _insert_for(conn)(model)
    table = model.__table__  # type: ignore[attr-defined]
    from_select = insert.from_select(list(keys + SUM_COLUMNS), query)
    conn.execute(
        from_select.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + from_select.excluded[name] for name in SUM_COLUMNS},
        )
    )


def add_stored_tags(conn: Connection, first_id: int, last_id: int, only_ids: Sequence[int] | None = None) -> None:
    """Index the tags of the stored calls ``first_id <= id <= last_id`` (and in ``only_ids``) in ``call_tags``.

    Unnested from each new row's JSON list by the database, in the batch's transaction, so
    the index never disagrees with the rows (untagged calls have NULL: no row).
    """
    logs = UsageRecord.__table__
    chosen = _chosen(logs, first_id, last_id, only_ids)
    if conn.dialect.name == "postgresql":
        each = func.jsonb_array_elements_text(cast(logs.c.tags, postgresql.JSONB)).table_valued("value").lateral("t")
    else:
        each = func.json_each(logs.c.tags).table_valued("value").alias("t")  # SQLite: no LATERAL keyword
    query = (
        select(logs.c.id, each.c.value, logs.c.timestamp)
        .select_from(logs.join(each, true()))
        .where(logs.c.tags.is_not(None), *chosen)
        .order_by(logs.c.id, each.c.value)
    )
    conn.execute(insert(CallTag).from_select(["usage_id", "tag", "timestamp"], query))


def _chosen(logs: Any, first_id: int, last_id: int, only_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    chosen: list[ColumnElement[bool]] = [logs.c.id.between(first_id, last_id)]
    if only_ids is not None:
        # a semi-join on the unnested array (hashed): ``id = ANY(array)`` compared every row
        # with every id, 20,000 x 20,000 per batch
        ids = select(func.unnest(cast(bindparam("ids", list(only_ids)), ARRAY(BigInteger))))
        chosen.append(logs.c.id.in_(ids))
    return chosen


def add_stored_to_rollups(
    conn: Connection, first_id: int, last_id: int, only_ids: Sequence[int] | None = None, tagged: bool = True
) -> None:
    """Add the stored calls with ``first_id <= id <= last_id`` (and in ``only_ids``, if given) to the roll-ups.

    Used right after a batch insert (same transaction): nothing is bound per roll-up row,
    and the sums run over the stored values of the same column type, so they stay exact.
    Three statements, each one pass over the new rows by primary key: the series; the
    users, projects and tags; the tags by provider and model (tags read from ``call_tags``:
    call :func:`add_stored_tags` first). ``tagged=False``: the caller knows no call of the batch has a
    tag, so the third statement is left out.
    """
    logs = UsageRecord.__table__
    epoch = _epoch_seconds(conn)
    chosen = _chosen(logs, first_id, last_id, only_ids)
    quarter = epoch - epoch % QUARTER  # timestamps are after 2000: epoch is positive
    day = epoch - epoch % DAY
    sum_names = [name for name in SUM_COLUMNS]

    # The series: the batch summed once per quarter hour (materialised), then fanned out to
    # every grain in one upsert.
    batch = (
        select(quarter.label("quarter"), logs.c.provider, logs.c.model, *_sums(logs))
        .where(*chosen)
        .group_by(quarter, logs.c.provider, logs.c.model)
        .cte("batch")
        .prefix_with("MATERIALIZED")
    )
    # each provider's total over its models too (model ''): charts by provider read 5 rows a bucket, not 200
    both = (
        select(batch)
        .union_all(
            select(
                batch.c.quarter,
                batch.c.provider,
                literal(ALL_MODELS).label("model"),
                *[func.sum(batch.c[name]).label(name) for name in sum_names],
            ).group_by(batch.c.quarter, batch.c.provider)
        )
        .subquery("both_levels")
    )
    _upsert_fanned(
        conn, UsageRollup, KEY_COLUMNS, both, both.c.quarter, GRAINS, "grains",
        lambda grain, bucket: [grain, bucket, both.c.provider, both.c.model],
    )  # fmt: skip

    # Users, projects and tags: the batch summed per UTC day and user or project, per six hours and
    # tag, then fanned out to days and weeks (and six hours for tags), all three in one upsert.
    user = func.coalesce(logs.c.user_id, "")  # one expression (and parameter) for SELECT and GROUP BY
    project = func.coalesce(logs.c.project, "")
    six = epoch - epoch % SIX_HOURS
    per_day = [
        select(literal(dimension).label("dimension"), day.label("start"), entity.label("entity"), *_sums(logs))
        .where(*chosen)
        .group_by(day, entity)
        for dimension, entity in (("user", user), ("project", project))
    ]
    # tags: through call_tags (filled just before, same transaction), one row per call and tag
    call_tags = CallTag.__table__
    per_day.append(
        select(literal("tag").label("dimension"), six.label("start"), call_tags.c.tag.label("entity"), *_sums(logs))
        .select_from(logs.join(call_tags, call_tags.c.usage_id == logs.c.id))
        .where(*chosen)
        .group_by(six, call_tags.c.tag)
    )
    days = per_day[0].union_all(*per_day[1:]).cte("days").prefix_with("MATERIALIZED")
    _upsert_fanned(
        conn, EntityRollup, ENTITY_KEY_COLUMNS, days, days.c.start, TAG_GRAINS, "entity_grains",
        lambda grain, bucket: [days.c.dimension, grain, bucket, days.c.entity],
        keep=lambda grain: or_(grain != SIX_HOURS, days.c.dimension == "tag"),  # six hours: tags only
    )  # fmt: skip
    if tagged:
        add_stored_tag_rollups(conn, chosen)


def add_stored_tag_rollups(conn: Connection, chosen: list[ColumnElement[bool]]) -> None:
    """The tags of the chosen stored calls (from ``call_tags``) by provider and model into ``usage_tag_rollups``.

    The batch summed per UTC day, tag, provider and model (materialised), then fanned out to
    days and weeks in one upsert. Untagged calls have no ``call_tags`` row: nothing to add.
    """
    logs = UsageRecord.__table__
    call_tags = CallTag.__table__
    epoch = _epoch_seconds(conn)
    day = epoch - epoch % DAY  # one expression (and parameters) for SELECT and GROUP BY
    days = (
        select(day.label("day"), call_tags.c.tag, logs.c.provider, logs.c.model, *_sums(logs))
        .select_from(logs.join(call_tags, call_tags.c.usage_id == logs.c.id))
        .where(*chosen)
        .group_by(day, call_tags.c.tag, logs.c.provider, logs.c.model)
        .cte("tag_days")
        .prefix_with("MATERIALIZED")
    )
    _upsert_fanned(
        conn, TagRollup, TAG_KEY_COLUMNS, days, days.c.day, ENTITY_GRAINS, "tag_grains",
        lambda grain, bucket: [days.c.tag, grain, bucket, days.c.provider, days.c.model],
    )  # fmt: skip


def _upsert_fanned(
    conn: Connection,
    model: type,
    key_columns: tuple[str, ...],
    summed: Any,
    at: Any,
    grains: tuple[int, ...],
    name: str,
    keys: Callable[[Any, Any], list[Any]],
    keep: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """Rows of sums per finest bucket (``summed``, its bucket start ``at``) fanned out to each of ``grains``
    (the pairs ``keep(grain)`` accepts), summed per roll-up key (``keys(grain, bucket_start)``) and added to
    ``model`` in one upsert."""
    grain = values(column("grain", Integer), name=name).data([(g,) for g in grains]).cte(name)
    key = keys(grain.c.grain, (at - at % grain.c.grain).label("bucket_start"))
    query = (
        select(*key, *[func.sum(summed.c[column_name]) for column_name in SUM_COLUMNS])
        .select_from(summed.join(grain, true()))
        # SQLite: an INSERT ... SELECT with a join needs a WHERE before ON CONFLICT
        .where(keep(grain.c.grain) if keep is not None else true())
        .group_by(*key)
        .order_by(*key)  # one lock order for concurrent PostgreSQL writers
    )
    _upsert_from(conn, model, key_columns, query)


def rebuild_rollups(engine: Engine, batch_size: int = 500_000) -> int:
    """Recompute every roll-up from the logs in one transaction, summed by the database; returns the calls read."""

    return run_write(engine, lambda conn: rebuild_in(conn, batch_size))


def rebuild_in(conn: Connection, batch_size: int = 500_000) -> int:
    """Recompute every roll-up inside the caller's write transaction; returns the calls read."""
    conn.execute(delete(UsageRollup))
    conn.execute(delete(EntityRollup))
    conn.execute(delete(TagRollup))
    count, low, high = conn.execute(
        select(func.count(), func.coalesce(func.min(UsageRecord.id), 0), func.coalesce(func.max(UsageRecord.id), 0))
    ).one()
    for first in range(low, high + 1, batch_size):
        add_stored_to_rollups(conn, first, first + batch_size - 1)
    if conn.dialect.name == "postgresql":  # fresh statistics, or the planner expects one row per bucket
        conn.execute(text("ANALYZE usage_rollups, usage_entity_rollups, usage_tag_rollups"))
    return int(count)


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
        getattr(row, "project", None),
        getattr(row, "cache_write_tokens", 0) or 0,
        getattr(row, "cache_write_1h_tokens", 0) or 0,
        getattr(row, "reasoning_tokens", 0) or 0,
        getattr(row, "web_search_calls", 0) or 0,
        stored_tags(getattr(row, "tags", None)),
    )


def stored_tags(value: str | None) -> tuple[str, ...]:
    """The tags of a stored call (its ``tags`` column, a JSON list or NULL)."""
    return tuple(json.loads(value)) if value else ()


@dataclass(frozen=True)
class RollupCheck:
    matches: bool
    raw: dict[str, Decimal | int]
    rolled: dict[str, Decimal | int]


def check_rollups(engine: Engine) -> RollupCheck:
    """Compare each grain's totals (and every bucket of the day grain, every user, project and tag bucket,
    every tag's bucket by provider and model) with raw sums of the logs."""
    raw_columns: list[Any] = [
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
            row = conn.execute(select(*cols).where(UsageRollup.grain == grain, UsageRollup.model != ALL_MODELS)).one()
            values = {n: (Decimal(v) if n in MONEY_COLUMNS else int(v)) for n, v in zip(names, row, strict=True)}
            if grain == DAY:
                rolled = values
            matches = matches and values == raw
        # detail: the day buckets of the series, and every user and project bucket, equal the
        # raw sums of the same keys
        day_rows = conn.execute(
            select(
                UsageRollup.bucket_start,
                UsageRollup.provider,
                UsageRollup.model,
                UsageRollup.calls,
                UsageRollup.cost_total,
            ).where(UsageRollup.grain == DAY)
        ).all()
        rolled_keys: dict[tuple, tuple[int, Decimal]] = {
            ("series", r.bucket_start, r.provider, r.model): (r.calls, r.cost_total) for r in day_rows
        }
        for r in conn.execute(
            select(
                EntityRollup.dimension,
                EntityRollup.grain,
                EntityRollup.bucket_start,
                EntityRollup.entity,
                EntityRollup.calls,
                EntityRollup.cost_total,
            )
        ):
            if r.calls or r.cost_total:
                rolled_keys[(r.dimension, r.grain, r.bucket_start, r.entity)] = (r.calls, r.cost_total)
        for t in conn.execute(
            select(
                TagRollup.tag,
                TagRollup.grain,
                TagRollup.bucket_start,
                TagRollup.provider,
                TagRollup.model,
                TagRollup.calls,
                TagRollup.cost_total,
            )
        ):
            if t.calls or t.cost_total:
                key = ("tag by model", t.tag, t.grain, t.bucket_start, t.provider, t.model)
                rolled_keys[key] = (t.calls, t.cost_total)

    raw_keys: dict[tuple, list] = {}

    def add(key: tuple, cost: Decimal) -> None:
        entry = raw_keys.get(key)
        if entry is None:
            entry = raw_keys[key] = [0, Decimal(0)]
        entry[0] += 1
        entry[1] += cost

    with engine.connect() as conn:
        for raw_row in conn.execution_options(yield_per=50_000).execute(
            select(
                UsageRecord.timestamp,
                UsageRecord.provider,
                UsageRecord.model,
                UsageRecord.user_id,
                UsageRecord.project,
                UsageRecord.cost_total,
                UsageRecord.tags,
            )
        ):
            epoch = int(raw_row.timestamp.timestamp())
            day = epoch - epoch % DAY
            cost = raw_row.cost_total
            add(("series", day, raw_row.provider, raw_row.model), cost)
            add(("series", day, raw_row.provider, ALL_MODELS), cost)
            for grain in ENTITY_GRAINS:
                bucket = epoch - epoch % grain
                add(("user", grain, bucket, raw_row.user_id or ""), cost)
                add(("project", grain, bucket, raw_row.project or ""), cost)
                for tag in stored_tags(raw_row.tags):
                    add(("tag", grain, bucket, tag), cost)
                    add(("tag by model", tag, grain, bucket, raw_row.provider, raw_row.model), cost)
            for tag in stored_tags(raw_row.tags):
                add(("tag", SIX_HOURS, epoch - epoch % SIX_HOURS, tag), cost)
    matches = matches and rolled_keys == {k: (v[0], v[1]) for k, v in raw_keys.items()}
    return RollupCheck(matches, raw, rolled)
