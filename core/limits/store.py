"""The database side of enforced budgets: counter rows, holds, denials, and what recording does to them.

A counter row per (scope, subject, period) caches the roll-ups' exact spend of that scope; every
enforced budget of that scope and period reads it (``Key``). It is kept in step inside the
recording transaction (``add_recorded``: spend += the batch's cost, version += 1, and the holds
of the recorded request ids taken off), so a call's real cost replaces its hold atomically. A
row is summed again from the roll-ups when it is missing, ``stale`` (made by recording alone,
so it holds only that batch) or older than the last reprice; that write is conditional on the
version read before summing (``refresh``), so a recording that committed in between is never
lost: the update then finds a newer version and is retried.

Every writer touches counters in one order, ``lock_order`` (period, then scope and subject):
reserving checks lock them so, and recording writes them so, one statement per period with
its rows sorted, so two transactions never wait on each other round a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from core.reporting import aggregates as reports
from core.storage.columns import Money, UTCDateTime
from core.storage.limit_tables import LimitCounter, LimitDenial, LimitHold
from core.storage.tables import PriceCorrection, UsageRecord

# scope kind (all, provider, model, user, project), subject ('' for all), period start and end (UTC)
Key = tuple[str, str, datetime, datetime]
DenialKey = tuple[int, str, datetime]  # budget id, subject of an each: budget ('' otherwise), period start
SCOPE_KINDS = ("all", "provider", "model", "user", "project")


def lock_order(key: Key) -> tuple[datetime, datetime, str, str]:
    """The one order every writer takes counters in: period first, then scope kind and subject."""
    return key[2], key[3], key[0], key[1]


@dataclass(frozen=True)
class Counter:
    """A counter row as read: spend and what is held against it now."""

    key: Key
    spend: Decimal
    held: Decimal
    version: int
    fresh: bool


def _key_lists(keys: Iterable[Key]) -> dict[str, Any]:
    keys = list(keys)
    return {
        "kinds": sorted({k[0] for k in keys}),
        "subjects": sorted({k[1] for k in keys}),
        "starts": sorted({k[2] for k in keys}),
        "ends": sorted({k[3] for k in keys}),
    }


def _in_key_lists(columns: Any) -> Any:
    """The four IN lists (expanding): both databases reach the rows through the unique key's index; the exact
    keys are picked after (a row of another combination, if any, is read or locked too, harmlessly)."""
    return and_(
        columns.scope_kind.in_(bindparam("kinds", expanding=True)),
        columns.period_start.in_(bindparam("starts", expanding=True, type_=UTCDateTime())),
        columns.period_end.in_(bindparam("ends", expanding=True, type_=UTCDateTime())),
        columns.subject.in_(bindparam("subjects", expanding=True)),
    )


def _same_counter(h: Any, c: Any) -> list[Any]:
    return [
        h.scope_kind == c.scope_kind,
        h.subject == c.subject,
        h.period_start == c.period_start,
        h.period_end == c.period_end,
    ]


def _read_statement() -> Any:
    """The counters with their live holds, this request id's own hold, the last reprice and whether the request
    id is recorded: one statement, made once.

    ``held`` is kept on the counter row, so a counter with thousands of holds in flight is read in
    one row; only the holds that expired since the last sweep are summed (a short index range)."""
    c = LimitCounter.__table__.c
    h = LimitHold.__table__.c
    now = bindparam("now", type_=UTCDateTime())
    expired = (
        select(func.coalesce(func.sum(h.amount), 0)).where(*_same_counter(h, c), h.expires_at <= now).scalar_subquery()
    )
    # a second reserve with the same request id replaces the first: its live hold does not count against it
    own = (
        select(func.coalesce(func.sum(h.amount), 0))
        .where(*_same_counter(h, c), h.expires_at > now, h.request_id == bindparam("rid"))
        .scalar_subquery()
    )
    corrections = select(func.coalesce(func.max(PriceCorrection.id), 0)).scalar_subquery()
    recorded = select(UsageRecord.id).where(UsageRecord.request_id == bindparam("rid")).limit(1).scalar_subquery()
    return select(
        c.scope_kind,
        c.subject,
        c.period_start,
        c.period_end,
        c.spend,
        c.version,
        c.stale,
        c.corrections_seen,
        type_coerce(c.held - expired - own, Money()).label("held"),
        corrections.label("corrections"),
        recorded.label("recorded"),
    ).where(_in_key_lists(c))


_READ = _read_statement()


def _lock_statement() -> Any:
    c = LimitCounter.__table__.c
    return (
        select(c.id)
        .where(_in_key_lists(c))
        .order_by(c.period_start, c.period_end, c.scope_kind, c.subject)
        .with_for_update()
    )


_LOCK = _lock_statement()


def last_correction(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(PriceCorrection.id), 0))).scalar_one())


@dataclass(frozen=True)
class Reading:
    """The counters found, and whether the request id of the read (if any) is recorded already."""

    counters: dict[Key, Counter]
    recorded: bool


def read(
    conn: Connection,
    keys: Sequence[Key],
    now: datetime,
    *,
    exclude_request: str | None = None,
    lock: bool = False,
) -> Reading:
    """The counters of ``keys`` with their live holds, in one statement (``lock``: FOR UPDATE first, in lock order)."""
    if not keys:
        return Reading({}, False)
    params: dict[str, Any] = {**_key_lists(keys), "now": now, "rid": exclude_request}
    if lock and conn.dialect.name == "postgresql":
        # The row lock of the guarantee: reserving checks on the same counters queue here, in one
        # order. Taken by a statement of its own: the read below then gets a snapshot from after
        # the wait, which sees the holds the previous lock holder committed.
        conn.execute(_LOCK, params)
    wanted = set(keys)
    found: dict[Key, Counter] = {}
    recorded = False
    for row in conn.execute(_READ, params):
        recorded = recorded or row.recorded is not None
        key = (row.scope_kind, row.subject, row.period_start, row.period_end)
        if key in wanted:
            fresh = not row.stale and row.corrections_seen >= row.corrections
            found[key] = Counter(key, row.spend, row.held, row.version, fresh)
    return Reading(found, recorded)


def is_recorded(conn: Connection, request_id: str) -> bool:
    return conn.execute(select(UsageRecord.id).where(UsageRecord.request_id == request_id)).first() is not None


def spend_of(engine: Engine, key: Key) -> Decimal:
    """The counter's exact spend, summed from the roll-ups (its scope's filter over its period)."""
    kind, subject, start, end = key
    return reports.totals(engine, start, end, where=None if kind == "all" else {kind: subject}).cost_total


def refresh(engine: Engine, key: Key, seen: Counter | None) -> None:
    """Sum the key's spend from the roll-ups and store it, unless a recording changed the row meanwhile."""
    with engine.connect() as conn:
        corrections = last_correction(conn)  # read before summing: a reprice after it makes the row stale again
    spend = spend_of(engine, key)
    kind, subject, start, end = key

    def work(conn: Connection) -> None:
        c = LimitCounter.__table__.c
        if seen is None:
            statement = _insert(conn)(LimitCounter).values(
                scope_kind=kind,
                subject=subject,
                period_start=start,
                period_end=end,
                spend=spend,
                held=0,
                version=0,
                stale=False,
                corrections_seen=corrections,
            )
            # a recording that made the row meanwhile wins: its row is stale and is summed again next time
            conn.execute(statement.on_conflict_do_nothing(index_elements=_KEY_COLUMNS))
        else:
            conn.execute(
                update(LimitCounter)
                .where(
                    c.scope_kind == kind,
                    c.period_start == start,
                    c.period_end == end,
                    c.subject == subject,
                    c.version == seen.version,
                )
                .values(spend=spend, stale=False, corrections_seen=corrections)
            )

    from core.storage.engine import run_write

    run_write(engine, work)


_KEY_COLUMNS = ["scope_kind", "period_start", "period_end", "subject"]


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# ---- denials ----------------------------------------------------------------------------------------


def count_denial(conn: Connection, keys: Iterable[DenialKey]) -> None:
    """denied += 1 for each (budget, subject, period) a check did not fit."""
    rows = [dict(budget_id=k[0], subject=k[1], period_start=k[2], denied=1) for k in sorted(set(keys))]
    if not rows:
        return
    d = LimitDenial.__table__.c
    upsert = _insert(conn)(LimitDenial)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["budget_id", "period_start", "subject"], set_={"denied": d.denied + 1}
        ),
        rows,
    )


# ---- holds ------------------------------------------------------------------------------------------

_ADD_HELD = (
    update(LimitCounter)
    .where(
        LimitCounter.scope_kind == bindparam("k_kind"),
        LimitCounter.period_start == bindparam("k_start", type_=UTCDateTime()),
        LimitCounter.period_end == bindparam("k_end", type_=UTCDateTime()),
        LimitCounter.subject == bindparam("k_subject"),
    )
    .values(held=LimitCounter.held + bindparam("k_amount", type_=Money()))
)


def _add_held(conn: Connection, deltas: dict[Key, Decimal]) -> None:
    """held += delta per counter, in lock order, in one executemany."""
    rows = [
        {"k_kind": k[0], "k_subject": k[1], "k_start": k[2], "k_end": k[3], "k_amount": amount}
        for k, amount in sorted(deltas.items(), key=lambda item: lock_order(item[0]))
        if amount
    ]
    if rows:
        conn.execute(_ADD_HELD, rows)


def _hold_key(row: Any) -> Key:
    return (row.scope_kind, row.subject, row.period_start, row.period_end)


def replace_holds(
    conn: Connection, request_id: str, holds: Sequence[tuple[Key, Decimal]], now: datetime, expires: datetime
) -> None:
    """Under the counters' locks: sweep their expired holds, drop this request id's, write the new ones."""
    h = LimitHold.__table__.c
    columns = (h.id, h.scope_kind, h.subject, h.period_start, h.period_end, h.amount)
    keys = {key for key, _ in holds}
    gone = {
        row.id: row for row in conn.execute(delete(LimitHold).where(h.request_id == request_id).returning(*columns))
    }
    if keys:
        expired = delete(LimitHold).where(_in_key_lists(h), h.expires_at <= bindparam("now", type_=UTCDateTime()))
        for row in conn.execute(expired.returning(*columns), {**_key_lists(keys), "now": now}):
            gone[row.id] = row
    deltas: dict[Key, Decimal] = {}
    for row in gone.values():
        # a hold of another combination of the four lists, if any, is gone too: it had expired
        deltas[_hold_key(row)] = deltas.get(_hold_key(row), Decimal(0)) - row.amount
    for key, amount in holds:
        deltas[key] = deltas.get(key, Decimal(0)) + amount
    _add_held(conn, deltas)
    if holds:
        conn.execute(
            insert(LimitHold),
            [
                dict(
                    request_id=request_id,
                    scope_kind=key[0],
                    subject=key[1],
                    period_start=key[2],
                    period_end=key[3],
                    amount=amount,
                    created_at=now,
                    expires_at=expires,
                )
                for key, amount in sorted(holds, key=lambda item: lock_order(item[0]))
            ],
        )


# ---- inside the recording transaction -------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What one period's counters need from a batch: every subject of some dimensions (``each:`` budgets), some
    named values of others (``provider:openai``, ``user:u-17``), and ``all``."""

    start: datetime
    end: datetime
    every: frozenset[str] = frozenset()  # dimensions of each: budgets: a counter per subject
    named: tuple[tuple[str, frozenset[str]], ...] = ()  # (dimension, values) of budgets of one value
    whole: bool = False  # an ``all`` budget


_COLUMNS = {"provider": "provider", "model": "model", "user": "user_id", "project": "project"}


@lru_cache(maxsize=64)
def _recorded_statement(
    postgres: bool, every: tuple[str, ...], named: tuple[str, ...], whole: bool, settle: bool
) -> Any:
    """One period's upsert: the batch's cost per counter (and its settled holds), rows in lock order.

    ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE``, one statement whatever the number
    of subjects or budgets; a counter it makes is stale (it holds only this batch)."""
    u = UsageRecord.__table__.c
    h = LimitHold.__table__.c
    c = LimitCounter.__table__.c
    start = bindparam("w_start", type_=UTCDateTime())
    end = bindparam("w_end", type_=UTCDateTime())
    in_batch: Any = u.id.between(bindparam("lo"), bindparam("hi"))
    if postgres:  # another writer's ids may interleave with ours
        in_batch = and_(in_batch, u.id == any_(cast(bindparam("batch_ids"), ARRAY(BigInteger))))
    # the period is applied in the sums, not the WHERE: a planner must reach the batch by its ids, never
    # by the time index over a whole month (PostgreSQL's generic plan for the prepared statement would)
    inside = and_(u.timestamp >= start, u.timestamp < end)
    spend = type_coerce(func.sum(case((inside, u.cost_total), else_=0)), Money())
    some = func.sum(case((inside, 1), else_=0)) > 0
    nothing = literal(0, Money())
    parts: list[Any] = []
    if whole:
        parts.append(
            select(literal("all").label("kind"), literal("").label("subject"), spend, nothing)
            .where(in_batch)
            .having(some)
        )
    for dimension in (*every, *named):
        column = u[_COLUMNS[dimension]]
        chosen = column.is_not(None) if dimension in every else column.in_(bindparam(f"v_{dimension}", expanding=True))
        parts.append(
            select(literal(dimension), column, spend, nothing).where(in_batch, chosen).group_by(column).having(some)
        )
    if settle:
        rids: Any = (
            h.request_id == any_(cast(bindparam("rids"), ARRAY(String)))
            if postgres
            else h.request_id.in_(bindparam("rids", expanding=True))
        )
        parts.append(
            select(h.scope_kind, h.subject, nothing, type_coerce(func.sum(h.amount), Money()))
            .where(rids, h.period_start == start, h.period_end == end)
            .group_by(h.scope_kind, h.subject)
        )
    rows = union_all(*parts).subquery("batch")
    kind, subject, added, settled = rows.c
    source = (
        select(
            kind,
            subject,
            start,
            end,
            type_coerce(func.sum(added), Money()),
            type_coerce(-func.sum(settled), Money()),
            literal(0, BigInteger()),
            true(),
            literal(0, BigInteger()),
        )
        .group_by(kind, subject)
        .order_by(kind, subject)
    )
    names = ["scope_kind", "subject", "period_start", "period_end", "spend", "held", "version", "stale"]
    upsert = (postgresql.insert if postgres else sqlite.insert)(LimitCounter).from_select(
        [*names, "corrections_seen"], source
    )
    return upsert.on_conflict_do_update(
        index_elements=_KEY_COLUMNS,
        set_={
            "spend": c.spend + upsert.excluded.spend,
            "held": c.held + upsert.excluded.held,
            "version": c.version + 1,
        },
    )


def _rids(conn: Connection, request_ids: Sequence[str]) -> Any:
    h = LimitHold.__table__.c
    if conn.dialect.name == "postgresql":
        return h.request_id == any_(cast(bindparam("rids", list(request_ids)), ARRAY(String)))
    return h.request_id.in_(list(request_ids))


def _chunks(conn: Connection, request_ids: list[str]) -> list[list[str]]:
    """PostgreSQL takes them all in one array; SQLite in lists its variable limit allows (one writer: the order of
    its statements never matters there)."""
    if conn.dialect.name == "postgresql" or len(request_ids) <= SQLITE_IDS:
        return [request_ids]
    return [request_ids[i : i + SQLITE_IDS] for i in range(0, len(request_ids), SQLITE_IDS)]


SQLITE_IDS = 10_000


def add_recorded(conn: Connection, windows: Sequence[Window], ids: Sequence[int], request_ids: Sequence[str]) -> None:
    """The batch's stored costs onto the counters of every period, and its request ids' holds settled.

    One statement per period, periods in lock order; a settled hold's counter exists (the reserve
    made it), so its row is updated, never inserted. Then the settled holds are deleted.
    """
    postgres = conn.dialect.name == "postgresql"
    chunks = _chunks(conn, sorted(set(request_ids))) if request_ids else []
    settling: set[tuple[datetime, datetime]] = set()
    h = LimitHold.__table__.c
    for chunk in chunks:
        query = select(h.period_start, h.period_end).where(_rids(conn, chunk)).distinct()
        settling.update((row.period_start, row.period_end) for row in conn.execute(query))
    plans = {(w.start, w.end): w for w in windows}
    for start, end in sorted(set(plans) | settling):
        window = plans.get((start, end), Window(start, end))
        named = [(d, v) for d, v in sorted(window.named) if v and d not in window.every]
        settle = (start, end) in settling
        for i, chunk in enumerate(chunks if settle else [[]]):
            spend = i == 0  # the batch's spend once; further chunks (SQLite only) settle more holds
            every = tuple(sorted(window.every)) if spend else ()
            whole = window.whole and spend
            chosen = named if spend else []
            if not (every or chosen or whole or settle):
                continue
            statement = _recorded_statement(postgres, every, tuple(d for d, _ in chosen), whole, settle)
            params: dict[str, Any] = {"w_start": start, "w_end": end, "lo": ids[0], "hi": ids[-1]}
            if postgres:
                params["batch_ids"] = list(ids)
            for dimension, values in chosen:
                params[f"v_{dimension}"] = sorted(values)
            if settle:
                params["rids"] = chunk
            conn.execute(statement, params)
    if settling:
        for chunk in chunks:
            conn.execute(delete(LimitHold).where(_rids(conn, chunk)))


# ---- the Budgets page --------------------------------------------------------------------------------


def subjects_near_limit(
    conn: Connection, kind: str, start: datetime, end: datetime, search: str | None, limit: int
) -> list[tuple[str, Decimal]]:
    """The subjects of a scope with the most spend this period (searchable), from their counter rows."""
    c = LimitCounter.__table__.c
    query = select(c.subject, c.spend).where(c.scope_kind == kind, c.period_start == start, c.period_end == end)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(c.subject.like(f"%{escaped}%", escape="\\"))
    query = query.order_by(c.spend.desc(), c.subject).limit(limit)
    return [(row.subject, row.spend) for row in conn.execute(query)]


def denials(conn: Connection, periods: dict[int, datetime]) -> dict[int, int]:
    """Checks denied this period, per budget id."""
    if not periods:
        return {}
    d = LimitDenial.__table__.c
    query = (
        select(d.budget_id, d.period_start, func.sum(d.denied))
        .where(d.budget_id.in_(list(periods)), d.period_start.in_(sorted(set(periods.values()))))
        .group_by(d.budget_id, d.period_start)
    )
    return {row[0]: int(row[2] or 0) for row in conn.execute(query) if periods.get(row[0]) == row[1]}


def denied_of(conn: Connection, budget_id: int, period_start: datetime, subjects: Sequence[str]) -> dict[str, int]:
    """Checks denied this period for these subjects of a budget (a handful: the page's top N)."""
    if not subjects:
        return {}
    d = LimitDenial.__table__.c
    query = select(d.subject, d.denied).where(
        d.budget_id == budget_id, d.period_start == period_start, d.subject.in_(list(subjects))
    )
    return {row.subject: row.denied for row in conn.execute(query)}
