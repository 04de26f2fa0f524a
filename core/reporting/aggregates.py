"""Aggregates for charts, tables and ``report``, computed in SQL from the roll-ups.

A period is resolved to quarter hours (the roll-ups' finest grain): its start is
rounded down and its end up to the next quarter hour.

Where a report reads from:
- by or filtered on provider and model only: the time series (``usage_rollups``);
- by or filtered on users only, or projects only: the entity roll-ups (per UTC day and
  7-day block) between the UTC midnights nearest the period's ends, plus (or minus) the
  raw logs between those midnights and the ends, read by ``ix_usage_time``;
- the top N users or projects: first among the keys that spend most over the period widened
  to whole UTC days (no raw edges), proved exact by a bound (:func:`top_from_whole_days`),
  else ranked on the exact sums of every key as above;
- by or filtered on one tag only: the entity roll-ups too (dimension ``tag``, with six-hour rows
  as well, so an end is at most 3 hours from its boundary; a call counts under each of its tags),
  with the raw edges joined to ``call_tags``;
- one tag with providers and models only (by provider or model, or filtered on them): the tag
  roll-ups (``usage_tag_rollups``, per tag, UTC day and 7-day block, provider and model) between
  the nearest UTC midnights, plus (or minus) the tag's raw calls near the ends through
  ``call_tags``, as for the entity roll-ups;
- any other mix (say, users of one model): the raw logs of the period, through the
  ``(column, timestamp, id)`` index of a filtered column; with tags among them (several tags
  that must all match, a tag and a user), the calls of the first tag in the period
  through ``call_tags``' ``(tag, timestamp, usage_id)`` index, the others checked by key.
Every path sums stored values exactly, so all agree to the pico-dollar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    or_,
    select,
    text,
    true,
    type_coerce,
    union_all,
    values,
)

from core.recording.rollups import ALL_MODELS, DAY, ENTITY_GRAINS, GRAINS, MONEY_COLUMNS, QUARTER, TAG_GRAINS
from core.storage.columns import Money, UTCDateTime
from core.storage.tables import EntityRollup, PriceCorrection, UsageRecord, UsageRollup
from core.storage.tag_tables import CallTag, TagRollup
from core.times import local_midnight, local_periods

DIMENSIONS = ("provider", "model", "user", "project", "tag")
ENTITY_DIMENSIONS = ("user", "project", "tag")  # the dimensions of usage_entity_rollups
NO_USER = "(no user)"
NO_PROJECT = "(no project)"
Where = dict[str, str]  # exact matches on provider, model, user, project, tag (one; more through ``tags``)


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
    low, high = _quarters(start, end)
    return _runs(low, high, GRAINS)


def _quarters(start: datetime, end: datetime) -> tuple[int, int]:
    """[start, end) widened to quarter hours, as epoch seconds."""
    return _floor(int(start.timestamp()), QUARTER), -(-int(end.timestamp()) // QUARTER) * QUARTER


def _runs(low: int, high: int, grains: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """[low, high) (multiples of the finest grain) as runs of whole buckets, finest at the edges."""
    if high <= low:
        return []
    left: list[tuple[int, int, int]] = []
    right: list[tuple[int, int, int]] = []
    for finer, coarser in zip(grains, grains[1:], strict=False):
        inner_low, inner_high = -(-low // coarser) * coarser, _floor(high, coarser)
        if inner_low >= inner_high:  # no whole coarser bucket inside: the finer grain covers the rest
            break
        if low < inner_low:
            left.append((finer, low, inner_low))
        if inner_high < high:
            right.append((finer, inner_high, high))
        low, high = inner_low, inner_high
    else:
        finer = grains[-1]
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
    """The roll-up column a report groups by (``tag``: the entity of the tag roll-ups, ``call_tags.tag``)."""
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


def _all_tags(where: Where | None, tags: Sequence[str]) -> tuple[Where | None, tuple[str, ...]]:
    """``where`` without its tag, and every tag a call must carry (``where["tag"]`` first), each once."""
    found = dict.fromkeys([*([where["tag"]] if where and "tag" in where else []), *tags])
    rest = {name: value for name, value in (where or {}).items() if name != "tag"}
    return rest or None, tuple(found)


def _grouped(
    engine: Engine,
    labelled: list[tuple[int, datetime, datetime]],
    by: str | None,
    where: Where | None = None,
    limit: int | None = None,
    tags: Sequence[str] = (),
) -> list[tuple[int, str | None, Totals]]:
    """Sum over labelled UTC ranges, grouped by label and an optional dimension; see the module docstring."""
    where, required = _all_tags(where, tags)
    if len(required) == 1:
        where = {**(where or {}), "tag": required[0]}
    dimensions = {_dimension(name) for name in (where or {})} | ({_dimension(by)} if by else set())
    untagged = {k: v for k, v in (where or {}).items() if k != "tag"}
    if len(required) == 1 and len(dimensions) > 1 and dimensions <= {"tag", "provider", "model"} and by != "tag":
        # one tag with providers and models only: the tag roll-ups (one tag alone: the entity roll-ups below)
        query = _from_tag_rollups(engine, labelled, by, untagged, required[0])
    elif len(required) > 1 or ("tag" in dimensions and len(dimensions) > 1) or (by == "tag" and required):
        query = _from_tagged(engine, [(label, 1, a, b) for label, a, b in labelled], by, untagged, required)
    elif dimensions <= {"provider", "model"}:
        query = _from_series(engine, labelled, by, where)
    elif len(dimensions) == 1 and limit is not None and by is not None:
        if not where and len(labelled) == 1:
            found = top_from_whole_days(engine, labelled[0], by, limit)
            if found is not None:
                return found
        # top N users or projects: rank on spend alone (two sums per row, not thirteen),
        # then sum everything for the N keys found
        ranking = _from_entities(engine, labelled, by, where, ["calls", "cost_total"])
        if ranking is None:
            return []
        ranking = ranking.order_by(text("cost_total DESC"), text("key")).limit(limit)
        keys = [row.key for row in _run(engine, ranking)]
        if not keys:
            return []
        query = _from_entities(engine, labelled, by, where, keys=keys)
        limit = None
    elif len(dimensions) == 1:
        query = _from_entities(engine, labelled, by, where)
    else:
        query = _from_logs(engine, [(label, 1, a, b) for label, a, b in labelled], by, where)
    if query is None:
        return []
    if limit is not None:
        query = query.order_by(text("cost_total DESC"), *([text("key")] if by else [])).limit(limit)
    return [(row.label, _label(by, row.key if by else None), _totals(row)) for row in _run(engine, query)]


CANDIDATES = 2  # top N is looked for among the first CANDIDATES x N (at least N + 10) by whole-day spend


def top_from_whole_days(
    engine: Engine, labelled: tuple[int, datetime, datetime], by: str, limit: int
) -> list[tuple[int, str | None, Totals]] | None:
    """The exact top ``limit`` users (or projects) of a period, without reading its raw edges; ``None``
    when this cannot be proved (the caller then ranks on the exact sums of every key).

    The period is widened to whole UTC days, which need no raw calls: each key's spend there
    is at least its spend in the period (no cost is negative). The first K keys by that
    spend are the candidates, and their exact sums are read by key. Any other key spends in
    the period at most the widened spend of the (K+1)-th, so when the N-th exact candidate
    spends more than that bound, no other key can rank among the first N. With a handful of
    keys (all of them candidates) it holds trivially; with thousands of users it holds unless
    the spend just outside the period reorders the head of the ranking.
    """
    label, start, end = labelled
    low, high = _quarters(start, end)
    if high <= low or limit == 0:
        return None
    whole = (label, datetime.fromtimestamp(_floor(low, DAY), UTC), datetime.fromtimestamp(-(-high // DAY) * DAY, UTC))
    widened = _from_entities(engine, [whole], by, None, ["calls", "cost_total"])
    if widened is None:
        return []
    count = max(limit * CANDIDATES, limit + 10)
    ranked = _run(engine, widened.order_by(text("cost_total DESC"), text("key")).limit(count + 1))
    candidates = [row.key for row in ranked[:count]]
    if not candidates:
        return []
    exact = _from_entities(engine, [labelled], by, None, keys=candidates)
    if exact is None:
        return []
    rows = sorted(
        ((row.label, _label(by, row.key), _totals(row)) for row in _run(engine, exact)),
        key=lambda item: (-item[2].cost_total, item[1] or ""),
    )
    if len(ranked) > count:  # keys beyond the candidates exist: the N-th must beat their bound
        bound = Decimal(ranked[count].cost_total)
        if len(rows) < limit or rows[limit - 1][2].cost_total <= bound:
            return None
    return rows[:limit]


def _run(engine: Engine, query: Select[Any]) -> list[Any]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # the planner overestimates these few index scans and would spend more on JIT than on the query
            conn.execute(text("SET LOCAL jit = off"))
            # ranking 10,000 users sums ~100,000 rows: hash them in memory, not a sort spilled to disk
            conn.execute(text("SET LOCAL work_mem = '64MB'"))
        return list(conn.execute(query).all())


def _summed(source: FromClause, group: list[Any], having: bool = False, names: list[str] = TOTAL_NAMES) -> Select[Any]:
    """Sums of the ``names`` columns of ``source`` per group (money typed as money)."""
    sums = []
    for name in names:
        total: Any = func.coalesce(func.sum(source.c[name]), 0)
        if name in MONEY_COLUMNS:
            total = type_coerce(total, Money())
        sums.append(total.label(name))
    query = select(*group, *sums).select_from(source).group_by(*group)
    return query.having(func.sum(source.c.calls) != 0) if having else query


def _from_series(
    engine: Engine, labelled: list[tuple[int, datetime, datetime]], by: str | None, where: Where | None
) -> Select[Any] | None:
    runs = [(label, grain, a, b) for label, start, end in labelled for grain, a, b in segments(start, end)]
    if not runs:
        return None
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
    # a provider's total over its models is kept as model '': read it unless models are asked for
    by_model = by == "model" or "model" in (where or {})
    level = table.c.model != ALL_MODELS if by_model else table.c.model == ALL_MODELS
    source: FromClause
    if engine.dialect.name == "postgresql":
        # one primary-key range scan per run: without the OFFSET 0 fence PostgreSQL pulls the
        # subquery up into a hash join that reads the whole table
        source = select(table).where(in_run(table), level, *_conditions(table, where)).offset(0).lateral("r")
        joined = seg.join(source, true())
    else:  # SQLite already loops over the runs and range-scans the primary key for each
        source = table
        joined = seg.join(source, and_(in_run(source), level, *_conditions(source, where)))
    group: list[Any] = [seg.c.label]
    if by is not None:
        group.append(source.c[_dimension(by)].label("key"))
    sums = [func.coalesce(func.sum(source.c[name]), 0).label(name) for name in TOTAL_NAMES]
    return select(*group, *sums).select_from(joined).group_by(*group)


def _nearest(epoch: int, step: int) -> int:
    low = _floor(epoch, step)
    return low + step if epoch - low > step // 2 else low


def entity_pieces(
    labelled: list[tuple[int, datetime, datetime]],
    grains: tuple[int, ...] = ENTITY_GRAINS,
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, datetime, datetime]]]:
    """Each labelled range as entity buckets (label, grain, bucket) plus signed raw log ranges.

    The range (widened to quarter hours) is snapped to the nearest boundary of the finest of
    ``grains`` at each end (a UTC midnight; six hours for tags, ``TAG_GRAINS``); the buckets
    between them come from the roll-ups, coarsest in the middle, and the raw logs between each
    end and its boundary are added (boundary inside the range) or subtracted (outside). No end
    is more than half the finest grain from its boundary: 12 hours, 3 for tags.
    """
    buckets: list[tuple[int, int, int]] = []
    raw: list[tuple[int, int, datetime, datetime]] = []

    def at(epoch: int) -> datetime:
        return datetime.fromtimestamp(epoch, UTC)

    for label, start, end in labelled:
        low, high = _quarters(start, end)
        if high <= low:
            continue
        first, last = _nearest(low, grains[0]), _nearest(high, grains[0])
        if first >= last:
            raw.append((label, 1, at(low), at(high)))
            continue
        if low != first:
            raw.append((label, 1, at(low), at(first)) if low < first else (label, -1, at(first), at(low)))
        if high != last:
            raw.append((label, 1, at(last), at(high)) if last < high else (label, -1, at(high), at(last)))
        for grain, a, b in _runs(first, last, grains):
            buckets.extend((label, grain, bucket) for bucket in range(a, b, grain))
    return buckets, raw


def _log_conditions(logs: FromClause, where: Where | None) -> list[ColumnElement[bool]]:
    """``where`` on the log table: "no user" / "no project" are NULL there."""
    conditions = []
    for name, value in (where or {}).items():
        column_ = logs.c[_dimension(name)]
        conditions.append(column_.is_(None) if value in (NO_USER, NO_PROJECT) else column_ == value)
    return conditions


def _raw_part(
    engine: Engine,
    pieces: list[tuple[int, int, datetime, datetime]],
    by: str | None,
    where: Where | None,
    names: list[str] = TOTAL_NAMES,
    keys: list[str] | None = None,
) -> Select[Any]:
    """Signed sums of the raw logs in each piece (label, sign, from, to), one row per log, keyed like the roll-ups."""
    raw = (
        values(
            column("label", Integer),
            column("sign", Integer),
            column("lo", UTCDateTime()),
            column("hi", UTCDateTime()),
            name="rawseg",
        )
        .data(pieces)
        .cte("rawseg")
    )
    logs = UsageRecord.__table__
    in_piece = (logs.c.timestamp >= raw.c.lo) & (logs.c.timestamp < raw.c.hi)
    conditions = _log_conditions(logs, where)
    if keys is not None and by is not None:
        key_column = logs.c[_dimension(by)]
        named = [key for key in keys if key]
        # no coalesce around the column, so its (column, timestamp, id) index serves the few keys
        conditions.append(or_(key_column.in_(named), key_column.is_(None)) if "" in keys else key_column.in_(named))
    source: FromClause
    if engine.dialect.name == "postgresql":
        source = select(logs).where(in_piece, *conditions).offset(0).lateral("l")
        joined = raw.join(source, true())
    else:
        source = logs
        joined = raw.join(source, and_(in_piece, *conditions))
    sign = raw.c.sign
    estimated = source.c.matched_by == "estimate"
    columns: list[Any] = [raw.c.label.label("label")]
    if by is not None:
        columns.append(func.coalesce(source.c[_dimension(by)], "").label("key"))
    for name in names:
        if name == "calls":
            value: Any = sign
        elif name == "estimated_calls":
            value = case((estimated, sign), else_=0)
        elif name == "estimated_cost":
            value = case((estimated, source.c.cost_total * sign), else_=0)
        else:
            value = source.c[name] * sign
        columns.append(value.label(name))
    return select(*columns).select_from(joined)


def _from_entities(
    engine: Engine,
    labelled: list[tuple[int, datetime, datetime]],
    by: str | None,
    where: Where | None,
    names: list[str] = TOTAL_NAMES,
    keys: list[str] | None = None,
) -> Select[Any] | None:
    """Users only, or projects only: entity buckets plus signed raw edges, summed per label and key.

    ``names``: the sums wanted; ``keys``: only these entities ('' for none).
    """
    named = {*(where or {}), *([by] if by else [])}
    dimension = next(d for d in ENTITY_DIMENSIONS if d in named)
    buckets, pieces = entity_pieces(labelled, TAG_GRAINS if dimension == "tag" else ENTITY_GRAINS)
    parts: list[Select[Any]] = []
    if buckets:
        table = EntityRollup.__table__
        wanted = [
            table.c.entity == ("" if value in (NO_USER, NO_PROJECT) else value) for value in (where or {}).values()
        ]
        if keys is not None:
            wanted.append(table.c.entity.in_(keys))
        key = "entity" if by is not None else None
        parts.append(_bucket_rows(engine, buckets, table, [table.c.dimension == dimension], wanted, key, names, "e"))
    if pieces and dimension == "tag":
        parts.append(_tagged_part(engine, pieces, by, None, tuple((where or {}).values()), names, keys))
    elif pieces:
        parts.append(_raw_part(engine, pieces, by, where, names, keys))
    return _union_summed(parts, by, names)


def _entity_rows_statement(dimensions: int, postgres: bool) -> Any:
    """The entity roll-up rows of ``dimensions`` (dimension, entity) pairs at given grains and buckets: each pair
    ``d{n}``, ``e{n}`` with the lists ``g{n}``, ``b{n}`` of (grain, bucket) side by side; one primary-key probe
    each (SQLite: the two IN lists, its planner probes the key per pair of values and the caller keeps the
    (grain, bucket) it asked for; PostgreSQL: the pairs unnested and joined, as its planner turns IN lists
    after the key's first column into a filter over every user's rows). Made once: a check runs it on every
    call it guards, so no statement is compiled per call."""
    table = EntityRollup.__table__
    e = table.c
    parts = []
    for n in range(dimensions):
        key = [e.dimension == bindparam(f"d{n}"), e.entity == bindparam(f"e{n}")]
        if postgres:
            pairs = (
                func.unnest(cast(bindparam(f"g{n}"), ARRAY(Integer)), cast(bindparam(f"b{n}"), ARRAY(BigInteger)))
                .table_valued("g", "b")
                .render_derived(name=f"k{n}")
            )
            # the OFFSET 0 fence keeps it a nested loop over the pairs, a probe of the whole key each (joined
            # plainly, the planner guessed one row for the dimension and entity and scanned every user's rows)
            probe = (
                select(e.dimension, e.entity, e.grain, e.bucket_start, e.cost_total)
                .where(*key, e.grain == pairs.c.g, e.bucket_start == pairs.c.b)
                .offset(0)
                .lateral(f"r{n}")
            )
            parts.append(select(*probe.c).select_from(pairs.join(probe, true())))
        else:
            grains = e.grain.in_(bindparam(f"g{n}", expanding=True))
            buckets = e.bucket_start.in_(bindparam(f"b{n}", expanding=True))
            parts.append(
                select(e.dimension, e.entity, e.grain, e.bucket_start, e.cost_total).where(*key, grains, buckets)
            )
    return parts[0] if dimensions == 1 else union_all(*parts)


_ENTITY_ROWS = {(n, postgres): _entity_rows_statement(n, postgres) for n in (1, 2) for postgres in (False, True)}
_RAW_COLUMN = {"user": UsageRecord.__table__.c.user_id, "project": UsageRecord.__table__.c.project}
_ENTITY_RAW = {
    dimension: select(func.coalesce(func.sum(UsageRecord.__table__.c.cost_total), 0)).where(
        column_ == bindparam("entity"),
        UsageRecord.__table__.c.timestamp >= bindparam("lo", type_=UTCDateTime()),
        UsageRecord.__table__.c.timestamp < bindparam("hi", type_=UTCDateTime()),
    )
    for dimension, column_ in _RAW_COLUMN.items()
}


def entity_spends(conn: Connection, wanted: Sequence[tuple[int, str, str, datetime, datetime]]) -> dict[int, Decimal]:
    """The spend of several (label, dimension, entity, start, end): a user's or a project's calls over
    [start, end), as ``totals`` sums them, from the entity roll-ups plus the raw calls near ends that are not
    UTC midnights. What an ``each:user`` / ``each:project`` budget's check reads on every call it guards: the
    roll-up rows of every period in one prepared statement (a few primary-key probes each), and for a
    period off UTC midnight one statement per raw edge (that user's or project's calls, by its index)."""
    found = {label: Decimal(0) for label, *_rest in wanted}
    pairs = sorted({(dimension, entity) for _l, dimension, entity, _s, _e in wanted})
    needs: dict[tuple[str, str, int, int], list[int]] = {}
    raw: list[tuple[int, int, str, str, datetime, datetime]] = []
    asked: list[dict[str, Any]] = []
    for dimension, entity in pairs:
        labelled = [(label, a, b) for label, d, x, a, b in wanted if (d, x) == (dimension, entity)]
        buckets, pieces = entity_pieces(labelled)
        for label, grain, bucket in buckets:
            needs.setdefault((dimension, entity, grain, bucket), []).append(label)
        raw.extend((label, sign, dimension, entity, lo, hi) for label, sign, lo, hi in pieces)
        probes = sorted({(grain, bucket) for _l, grain, bucket in buckets}) or [(0, 0)]  # (0, 0): no row
        asked.append({"d": dimension, "e": entity, "g": [g for g, _b in probes], "b": [b for _g, b in probes]})
    postgres = conn.dialect.name == "postgresql"
    for first in range(0, len(asked), 2):  # two pairs a statement: a user and a project, as a check asks
        chunk = asked[first : first + 2]
        params = {f"{name}{n}": value for n, pair in enumerate(chunk) for name, value in pair.items()}
        for row in conn.execute(_ENTITY_ROWS[(len(chunk), postgres)], params):
            for label in needs.get((row.dimension, row.entity, row.grain, row.bucket_start), ()):
                found[label] += row.cost_total
    for label, sign, dimension, entity, lo, hi in raw:
        amount = conn.execute(_ENTITY_RAW[dimension], {"entity": entity, "lo": lo, "hi": hi}).scalar_one()
        found[label] += sign * amount
    return found


def _bucket_rows(
    engine: Engine,
    buckets: list[tuple[int, int, int]],
    table: Any,
    key_match: list[ColumnElement[bool]],
    wanted: list[ColumnElement[bool]],
    key: str | None,
    names: list[str],
    alias: str,
) -> Select[Any]:
    """The rows of a day/7-day roll-up ``table`` in each bucket (label, grain, bucket) matching ``key_match``
    (the leading key columns) and ``wanted``: one primary-key lookup or prefix scan per bucket; ``key``: the
    column reported as ``key``."""
    seg = (
        values(column("label", Integer), column("grain", Integer), column("bucket", BigInteger), name=f"{alias}seg")
        .data(buckets)
        .cte(f"{alias}seg")
    )
    matches = [*key_match, table.c.grain == seg.c.grain, table.c.bucket_start == seg.c.bucket]
    source: FromClause
    if engine.dialect.name == "postgresql":
        # the OFFSET 0 fence keeps it a nested loop over the buckets, one index range each
        source = select(table).where(*matches, *wanted).offset(0).lateral(alias)
        joined = seg.join(source, true())
    else:
        source = table
        joined = seg.join(source, and_(*matches, *wanted))
    columns: list[Any] = [seg.c.label.label("label")]
    if key is not None:
        columns.append(source.c[key].label("key"))
    columns.extend(source.c[name].label(name) for name in names)
    return select(*columns).select_from(joined)


def _union_summed(parts: list[Select[Any]], by: str | None, names: list[str] = TOTAL_NAMES) -> Select[Any] | None:
    """The parts' rows (label, key, sums) summed per label and key; ``None`` when there is no part."""
    if not parts:
        return None
    union = (parts[0] if len(parts) == 1 else parts[0].union_all(*parts[1:])).subquery("u")
    group: list[Any] = [union.c.label]
    if by is not None:
        group.append(union.c.key)
    return _summed(union, group, having=True, names=names)


def _tagged_part(
    engine: Engine,
    pieces: list[tuple[int, int, datetime, datetime]],
    by: str | None,
    where: Where | None,
    tags: tuple[str, ...],
    names: list[str] = TOTAL_NAMES,
    keys: list[str] | None = None,
) -> Select[Any]:
    """Signed sums of the raw calls in each piece that carry every tag in ``tags`` (and match ``where``).

    With tags, the calls are found through ``call_tags``' (tag, timestamp) index for the first
    tag, the others checked by primary key; without, through the log's time index. ``by="tag"``
    gives one row per call and tag (a call counts under each of its tags).
    """
    raw = (
        values(
            column("label", Integer),
            column("sign", Integer),
            column("lo", UTCDateTime()),
            column("hi", UTCDateTime()),
            name="tagseg",
        )
        .data(pieces)
        .cte("tagseg")
    )
    logs = UsageRecord.__table__
    call_tags = CallTag.__table__
    base: FromClause
    if tags:
        first = call_tags.alias("first_tag")
        base = first.join(logs, logs.c.id == first.c.usage_id)
        when = [first.c.tag == tags[0], first.c.timestamp >= raw.c.lo, first.c.timestamp < raw.c.hi]
    else:
        base = logs
        when = [logs.c.timestamp >= raw.c.lo, logs.c.timestamp < raw.c.hi]
    conditions = _log_conditions(logs, where)
    for index, tag in enumerate(tags[1:]):
        other = call_tags.alias(f"also_{index}")
        conditions.append(exists().where(other.c.usage_id == logs.c.id, other.c.tag == tag))
    key: Any = None
    if by == "tag":
        each = call_tags.alias("by_tag")
        base = base.join(each, each.c.usage_id == logs.c.id)
        key = each.c.tag
    elif by is not None:
        key = func.coalesce(logs.c[_dimension(by)], "")
    if keys is not None and key is not None:
        conditions.append(key.in_(keys))
    wanted = [name for name in names if name not in ("calls", "estimated_calls", "estimated_cost")]
    inner = [logs.c[name] for name in dict.fromkeys([*wanted, "cost_total", "matched_by"])]
    source: Any
    if engine.dialect.name == "postgresql":
        # one index range per piece (the OFFSET 0 fence keeps it a nested loop over the pieces)
        lateral = (
            select(*inner, *([key.label("key")] if key is not None else []))
            .select_from(base)
            .where(*when, *conditions)
            .offset(0)
            .lateral("l")
        )
        joined = raw.join(lateral, true())
        source, key_column = lateral.c, (lateral.c.key if key is not None else None)
    else:
        joined = raw.join(base, and_(*when, *conditions))
        source, key_column = logs.c, key
    sign = raw.c.sign
    estimated = source.matched_by == "estimate"
    columns: list[Any] = [raw.c.label.label("label")]
    if key_column is not None:
        columns.append(key_column.label("key"))
    for name in names:
        if name == "calls":
            value: Any = sign
        elif name == "estimated_calls":
            value = case((estimated, sign), else_=0)
        elif name == "estimated_cost":
            value = case((estimated, source.cost_total * sign), else_=0)
        else:
            value = source[name] * sign
        columns.append(value.label(name))
    return select(*columns).select_from(joined)


def _from_tagged(
    engine: Engine,
    pieces: list[tuple[int, int, datetime, datetime]],
    by: str | None,
    where: Where | None,
    tags: tuple[str, ...],
) -> Select[Any] | None:
    """Tags mixed with other filters (several tags, tags of one user, by tag with a tag): the raw calls."""
    widened = []
    for label, sign, start, end in pieces:
        low, high = _quarters(start, end)
        if high > low:
            widened.append((label, sign, datetime.fromtimestamp(low, UTC), datetime.fromtimestamp(high, UTC)))
    if not widened:
        return None
    return _union_summed([_tagged_part(engine, widened, by, where or None, tags)], by)


def _from_tag_rollups(
    engine: Engine,
    labelled: list[tuple[int, datetime, datetime]],
    by: str | None,
    where: Where,
    tag: str,
) -> Select[Any] | None:
    """One tag by (or filtered on) provider or model: tag roll-up buckets plus the tag's signed raw edges.

    The buckets as :func:`entity_pieces` gives them, each a prefix range of the key (tag, grain,
    bucket) of ``usage_tag_rollups``; the edges through ``call_tags`` (:func:`_tagged_part`).
    """
    buckets, pieces = entity_pieces(labelled)
    parts: list[Select[Any]] = []
    if buckets:
        table = TagRollup.__table__
        key = _dimension(by) if by is not None else None
        parts.append(
            _bucket_rows(engine, buckets, table, [table.c.tag == tag], _conditions(table, where), key, TOTAL_NAMES, "t")
        )
    if pieces:
        parts.append(_tagged_part(engine, pieces, by, where or None, (tag,)))
    return _union_summed(parts, by)


def _from_logs(
    engine: Engine, pieces: list[tuple[int, int, datetime, datetime]], by: str | None, where: Where | None
) -> Select[Any] | None:
    """Mixed dimensions (users of one model, projects of one user, ...): the raw logs of the period."""
    widened = []
    for label, sign, start, end in pieces:
        low, high = _quarters(start, end)
        if high > low:
            widened.append((label, sign, datetime.fromtimestamp(low, UTC), datetime.fromtimestamp(high, UTC)))
    if not widened:
        return None
    return _union_summed([_raw_part(engine, widened, by, where)], by)


def totals(
    engine: Engine, start: datetime, end: datetime, where: Where | None = None, tags: Sequence[str] = ()
) -> Totals:
    """Everything in [start, end) (matching ``where``, carrying every tag in ``tags``); each call counted once."""
    rows = _grouped(engine, [(0, start, end)], None, where, tags=tags)
    return rows[0][2] if rows else Totals()


def breakdown(
    engine: Engine,
    start: datetime,
    end: datetime,
    by: str,
    where: Where | None = None,
    limit: int | None = None,
    tags: Sequence[str] = (),
) -> list[Row]:
    """Totals per provider, model, user, project or tag over [start, end), biggest spend first (the first ``limit``).

    By tag, a call counts under each of its tags (the rows overlap) and untagged calls have no row.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit: {limit!r} is not a number of rows")
    rows = _grouped(engine, [(0, start, end)], by, where, limit, tags)
    ordered = sorted((Row(None, key, t) for _label, key, t in rows), key=lambda r: (-r.totals.cost_total, r.key or ""))
    return ordered if limit is None else ordered[:limit]


def over_time(
    engine: Engine,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    granularity: str = "day",
    by: str | None = None,
    where: Where | None = None,
    tags: Sequence[str] = (),
) -> list[Row]:
    """Totals per local day, week or month in ``tz`` (and per provider/model/user/project/tag if ``by``).

    A period is labelled by its first day inside [start, end): a week cut by the start of the range
    is labelled by the range's first day, never by a day before it.
    """
    periods = local_periods(start, end, tz, granularity)
    labelled = [(i, a, b) for i, (_label, a, b) in enumerate(periods)]
    rows = _grouped(engine, labelled, by, where, tags=tags)
    labels = axis_periods(start, end, tz, granularity)
    return sorted(
        (Row(labels[label], key, t) for label, key, t in rows),
        key=lambda r: (r.period, -r.totals.cost_total, r.key or ""),
    )


def axis_periods(start: datetime, end: datetime, tz: ZoneInfo, granularity: str) -> list[date]:
    """Every period of [start, end) in ``tz``, each labelled by its first local day inside the range.

    A chart draws all of them, zero where nothing was spent, so a gap in spending shows as a gap.
    """
    return [lo.astimezone(tz).date() for _label, lo, _hi in local_periods(start, end, tz, granularity)]


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


def data_version(engine: Engine) -> tuple[int, int]:
    """What the figures were read from: the newest log id and the newest repricing (two index lookups).

    Any call recorded or repriced since changes it, so a cache keyed by it is never stale.
    """
    with engine.connect() as conn:
        newest_call = conn.execute(select(func.max(UsageRecord.id))).scalar()
        newest_reprice = conn.execute(select(func.max(PriceCorrection.id))).scalar()
    return int(newest_call or 0), int(newest_reprice or 0)


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
