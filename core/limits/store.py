"""The database side of enforced budgets: counter rows, holds, and what recording does to them.

A counter row per (budget, subject, period) holds what is held against it and how many checks it denied.
For a budget of one scope it also caches the roll-ups' exact spend; an ``each:user`` / ``each:project``
budget's spend is never on it (``each_spend`` reads the subject's entity roll-ups at each check, so
recording writes nothing per subject). Rows are kept in step inside the recording transaction
(``on_recorded``: spend += the batch's cost for one scope, version += 1, and the holds of the
recorded request ids deleted), so a call's real cost replaces its hold atomically. A row is summed
again from the roll-ups when it is missing, ``stale`` (made by recording alone, so it holds only
that batch) or older than the last reprice; that write is conditional on the version read before
summing (``refresh``), so a recording that committed in between is never lost: the update then
finds a newer version and is retried.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    Integer,
    Numeric,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from core.budgets.spend import spend_in
from core.recording.rollups import DAY
from core.reporting.aggregates import entity_pieces, entity_spends
from core.storage.budget_tables import Budget
from core.storage.columns import Money, UTCDateTime
from core.storage.limit_tables import LimitCounter, LimitHold
from core.storage.tables import EntityRollup, PriceCorrection, UsageRecord

Key = tuple[int, str, datetime]  # budget id, subject ('' for a budget of one scope), period start (UTC)


@dataclass(frozen=True)
class Counter:
    """A counter row as read: spend and what is held against it now."""

    key: Key
    spend: Decimal
    held: Decimal
    version: int
    fresh: bool
    denied: int
    expired: bool = False  # expired holds still on the table (a reserve sweeps them; the server's loop too)


@dataclass(frozen=True)
class Locked:
    """What a reserve read under the counters' locks: the counters, whether the request id's call is recorded
    already, and (PostgreSQL, when no counter has an expired hold and the request id holds nothing yet) each
    counter's row id, for ``hold``."""

    counters: dict[Key, Counter]
    recorded: bool
    ids: dict[Key, int] | None = None
    spends: dict[Key, Decimal] | None = None  # the each: budgets' spend, when read in the same statement


def _key_filter(columns: Any, keys: Sequence[Key]) -> Any:
    return tuple_(columns.budget_id, columns.subject, columns.period_start).in_(list(keys))


def _pg_keys(amounts: bool = False) -> Any:
    """PostgreSQL: the keys (and amounts) as arrays unnested into rows ``k(b, s, p[, a])``: one statement text
    whatever their number, so psycopg prepares it and each key is one probe of the counters' unique index."""
    arrays = [
        cast(bindparam("k_budgets"), ARRAY(BigInteger)),
        cast(bindparam("k_subjects"), ARRAY(String)),
        cast(bindparam("k_starts"), ARRAY(postgresql.TIMESTAMP(timezone=True))),
    ]
    names = ["b", "s", "p"]
    if amounts:
        arrays.append(cast(bindparam("k_amounts"), ARRAY(Numeric)))
        names.append("a")
    return func.unnest(*arrays).table_valued(*names).render_derived(name="k")


def _pg_key_params(keys: Sequence[Key], amounts: Sequence[Decimal] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "k_budgets": [k[0] for k in keys],
        "k_subjects": [k[1] for k in keys],
        "k_starts": [k[2] for k in keys],
    }
    if amounts is not None:
        params["k_amounts"] = list(amounts)
    return params


def _on_keys(c: Any, k: Any) -> Any:
    return and_(c.budget_id == k.c.b, c.subject == k.c.s, c.period_start == k.c.p)


# what both reads return of a counter: its row id, key, spend, version, freshness, denials and ``held``
_COUNTER_NAMES = "id budget_id subject period_start spend version stale corrections_seen denied held".split()


def _counter_columns(c: Any) -> list[Any]:
    """``_COUNTER_NAMES`` of ``c`` (the table's columns or a probe's), and the last price correction's id."""
    corrections = select(func.coalesce(func.max(PriceCorrection.id), 0)).scalar_subquery()
    return [*(c[name] for name in _COUNTER_NAMES), corrections.label("corrections")]


def _expired_holds(aggregate: Any, c: Any) -> Any:
    """``aggregate`` over the holds of counter ``c`` that expired by ``now`` and are not swept yet (a short range
    of ``ix_limit_holds_key``): what its ``held`` still includes but no longer counts."""
    h = LimitHold.__table__.c
    now = bindparam("now", type_=UTCDateTime())
    same = [h.budget_id == c.budget_id, h.subject == c.subject, h.period_start == c.period_start]
    return select(aggregate).where(*same, h.expires_at <= now).scalar_subquery()


def _probed(*, lock: bool) -> tuple[Any, Any]:
    """PostgreSQL: the keys as rows (``_pg_keys``) and beside each its counter, a lateral subquery: a nested
    loop over the keys in the order given, one probe of the unique index each, whatever the planner believes
    of the counters' number. (A join left to the planner hashed every counter after a sequential scan while
    their statistics were behind a burst of new ones: 2.5 ms against 0.3 ms at 5,500 counters, EXPLAIN
    ANALYZE; autovacuum may be late or off.) ``lock``: each row locked FOR UPDATE as it is probed, so in the
    keys' order; either the lock or OFFSET 0 keeps the subquery from being merged into a join."""
    t = LimitCounter.__table__
    k = _pg_keys()
    probe = select(t).where(_on_keys(t.c, k))
    probe = probe.with_for_update() if lock else probe.offset(0)
    return k, probe.lateral("c")


def _read_statement(postgres: bool) -> Any:
    """The counters with their live holds: one statement, made once. SQLite reaches the rows through the
    unique key's index on three IN lists (the exact keys are picked after); PostgreSQL probes each key
    (``_probed``).

    ``held`` is kept on the counter row, so a budget with thousands of holds in flight is read in
    one row; only the holds that expired since the last sweep are summed, and subtracted in ``read``."""
    h = LimitHold.__table__.c
    if postgres:
        k, probe = _probed(lock=False)
        expired = type_coerce(_expired_holds(func.coalesce(func.sum(h.amount), 0), probe.c), Money())
        return select(*_counter_columns(probe.c), expired.label("expired")).select_from(k.join(probe, true()))
    c = LimitCounter.__table__.c
    expired = type_coerce(_expired_holds(func.coalesce(func.sum(h.amount), 0), c), Money())
    return select(*_counter_columns(c), expired.label("expired")).where(
        c.budget_id.in_(bindparam("budgets", expanding=True)),
        c.subject.in_(bindparam("subjects", expanding=True)),
        c.period_start.in_(bindparam("starts", expanding=True, type_=UTCDateTime())),
    )


_READ = {postgres: _read_statement(postgres) for postgres in (False, True)}


def _made_counters() -> Any:
    """PostgreSQL: counter rows for the keys ``m_budgets``, ``m_subjects``, ``m_starts``, ``m_ends`` where there is
    none (a reserve's ``each:`` counters not seen yet), as a CTE returning the rows it made. A row made is
    locked by being new: another transaction making the same key waits for this one (ON CONFLICT)."""
    t = LimitCounter.__table__
    m = (
        func.unnest(
            cast(bindparam("m_budgets"), ARRAY(BigInteger)),
            cast(bindparam("m_subjects"), ARRAY(String)),
            cast(bindparam("m_starts"), ARRAY(postgresql.TIMESTAMP(timezone=True))),
            cast(bindparam("m_ends"), ARRAY(postgresql.TIMESTAMP(timezone=True))),
        )
        .table_valued("b", "s", "p", "e")
        .render_derived(name="m")
    )
    zero = literal(0)
    rows = select(m.c.b, m.c.s, m.c.p, m.c.e, zero, zero, zero, true(), zero, zero)
    names = ["budget_id", "subject", "period_start", "period_end", "spend", "held", "version", "stale"]
    made = postgresql.insert(LimitCounter).from_select([*names, "corrections_seen", "denied"], rows)
    keys = ["budget_id", "subject", "period_start"]
    return made.on_conflict_do_nothing(index_elements=keys).returning(*t.c).cte("made")


def _rolled_spends() -> Any:
    """PostgreSQL: the ``each:`` counters' spend from the entity roll-ups, per budget and subject (a reserve
    reads one period of a budget): each roll-up row wanted as ``q_budgets``, ``q_subjects`` (whose it is; the
    subject is the row's entity), ``q_dimensions``, ``q_grains``, ``q_buckets``; one probe of the roll-ups'
    primary key each."""
    e = EntityRollup.__table__.c
    q = (
        func.unnest(
            cast(bindparam("q_budgets"), ARRAY(BigInteger)),
            cast(bindparam("q_subjects"), ARRAY(String)),
            cast(bindparam("q_dimensions"), ARRAY(String)),
            cast(bindparam("q_grains"), ARRAY(Integer)),
            cast(bindparam("q_buckets"), ARRAY(BigInteger)),
        )
        .table_valued("b", "s", "d", "g", "x")
        .render_derived(name="q")
    )
    at = [e.dimension == q.c.d, e.grain == q.c.g, e.bucket_start == q.c.x, e.entity == q.c.s]
    probe = select(e.cost_total).where(*at).offset(0).lateral("r")  # OFFSET 0: a nested loop, a probe each
    return (
        select(q.c.b, q.c.s, func.sum(probe.c.cost_total).label("amount"))
        .select_from(q.join(probe, true()))
        .group_by(q.c.b, q.c.s)
        .cte("rolled")
    )


def _locked_read_statement() -> Any:
    """PostgreSQL, reserve: make the counters not seen yet (``_made_counters``), lock the others, each as it is
    probed in the keys' order (the caller gives them in the lock order, ``lock_rank``), and read them all with
    the ``each:`` counters' spend (``_rolled_spends``), in one statement.

    The counters made come first (the union's first branch runs first): every writer makes before it locks.
    A row that waited for another reserve's lock is returned as that reserve committed it (READ COMMITTED
    re-reads a locked row), so ``held``, ``spend`` and ``version`` are current; ``changed`` says so (its
    version as the statement's snapshot saw it differs). The sums of holds and of roll-ups come from that
    snapshot, taken before any wait, so they may be behind: they are used only when nothing changed and
    ``doubtful`` is 0 (``reserve_read``); else read again, after the locks."""
    h = LimitHold.__table__.c
    t = LimitCounter.__table__
    k, probe = _probed(lock=True)
    made = _made_counters()
    rolled = _rolled_spends()
    # any hold of this request id, on any counter (by the request id's index; once for the statement)
    own = select(func.count()).where(h.request_id == bindparam("rid", type_=String())).scalar_subquery()
    recorded = exists().where(UsageRecord.request_id == bindparam("rid", type_=String())).label("recorded")

    rows = union_all(
        select(*(made.c[name] for name in _COUNTER_NAMES)).select_from(made),
        select(*(probe.c[name] for name in _COUNTER_NAMES)).select_from(k.join(probe, true())),
    ).subquery("u")
    c = rows.c
    seen = t.alias("seen")
    changed = exists().where(seen.c.id == c.id, seen.c.version != c.version)
    at = [rolled.c.b == c.budget_id, rolled.c.s == c.subject]
    spend = type_coerce(select(rolled.c.amount).where(*at).scalar_subquery(), Money())
    doubtful = (_expired_holds(func.count(), c) + own).label("doubtful")
    return select(*_counter_columns(c), doubtful, recorded, changed.label("changed"), spend.label("rolled"))


def _lock_statement() -> Any:
    """PostgreSQL: the keys of the counters of ``_pg_keys`` that exist, locked FOR UPDATE in the lock order
    (sorted in SQL: callers other than a reserve do not know the budgets' ranks)."""
    c = LimitCounter.__table__.c
    k = _pg_keys()
    joined = LimitCounter.__table__.join(k, _on_keys(c, k)).join(Budget.__table__, Budget.__table__.c.id == c.budget_id)
    return (
        select(c.budget_id, c.subject, c.period_start)
        .select_from(joined)
        .order_by(_rank_column(), c.period_start, c.period_end, c.budget_id, c.subject)
        .with_for_update(of=LimitCounter.__table__)
    )


def last_correction(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(PriceCorrection.id), 0))).scalar_one())


def read(
    conn: Connection,
    keys: Sequence[Key],
    now: datetime,
    *,
    exclude_request: str | None = None,
    lock: bool = False,
) -> dict[Key, Counter]:
    """The counters of ``keys`` with their live holds, in one statement (``lock``: FOR UPDATE first, in key order)."""
    if not keys:
        return {}
    locked: set[Key] | None = None
    if lock:
        # The row lock of the guarantee: reserving checks on the same counters queue here, in one
        # order. Taken by a statement of its own: the read below then gets a snapshot from after
        # the wait, which sees the holds the previous lock holder committed. A counter made by
        # another transaction between the two statements is read but not locked: left out, as missing.
        locked = lock_counters(conn, keys)
    postgres = conn.dialect.name == "postgresql"
    params: dict[str, Any] = {"now": now}
    if postgres:
        params.update(_pg_key_params(sorted(set(keys))))
    else:
        params.update(
            budgets=sorted({k[0] for k in keys}),
            subjects=sorted({k[1] for k in keys}),
            starts=sorted({k[2] for k in keys}),
        )
    own: dict[Key, Decimal] = {}
    if exclude_request is not None:  # a second reserve replaces the first: its hold does not count against it
        h = LimitHold.__table__.c
        mine = select(h.budget_id, h.subject, h.period_start, h.amount).where(
            h.request_id == exclude_request, h.expires_at > now
        )
        for row in conn.execute(mine):
            key = (row.budget_id, row.subject, row.period_start)
            own[key] = own.get(key, Decimal(0)) + row.amount
    wanted = set(keys)
    found: dict[Key, Counter] = {}
    for row in conn.execute(_READ[postgres], params):
        key = (row.budget_id, row.subject, row.period_start)
        if key in wanted and (locked is None or key in locked):
            fresh = not row.stale and row.corrections_seen >= row.corrections
            held = row.held - row.expired - own.get(key, Decimal(0))
            found[key] = Counter(key, row.spend, held, row.version, fresh, row.denied, row.expired != 0)
    return found


def _rolled_params(each: Sequence[tuple[Key, str, datetime]]) -> tuple[dict[str, Any], bool]:
    """``_rolled_spends``' parameters for these ``each:`` budgets (key, dimension, period end), and whether the
    roll-ups alone give their spend. When a period ends off a UTC midnight (its raw calls are added by
    ``each_spend``, read after the locks instead) no roll-up row is asked for: it would be read for nothing."""
    names = ("q_budgets", "q_subjects", "q_dimensions", "q_grains", "q_buckets")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for key, dimension, end in each:
        buckets, raw = entity_pieces([(0, key[2], end)])
        if raw:
            return {name: [] for name in names}, False
        for _label, grain, bucket in buckets:
            for name, value in zip(columns, (key[0], key[1], dimension, grain, bucket), strict=True):
                columns[name].append(value)
    return columns, True


def reserve_read(
    conn: Connection,
    keys: Sequence[Key],
    now: datetime,
    request_id: str,
    *,
    make: Sequence[tuple[Key, datetime]] = (),
    each: Sequence[tuple[Key, str, datetime]] = (),
) -> Locked:
    """The counters of ``keys`` locked (the guarantee's row locks; ``keys`` in the lock order, ``lock_rank``,
    period start and end, budget id) and read, after those of ``make`` (key, period end) are made where missing,
    and whether a call with ``request_id`` is recorded already; with the spend of ``each`` (``each_spend``'s
    items) when it could be read in the same statement.

    PostgreSQL: one statement (``_LOCKED_READ``) makes, locks and reads. The counters are read again by
    ``read`` after the locks when one has an expired hold or the request id holds already; ``spends`` is left
    out (the caller reads ``each_spend`` after the locks) when a counter changed while the statement waited
    for its lock or a period ends off a UTC midnight. SQLite, whose single writer is the lock: ``read`` after
    the locks. A snapshot taken after the locks sees every hold the previous lock holder committed. A call
    recorded while this waited is not seen: its hold then stands until it expires (more held, never less)."""
    rows = []
    if keys and conn.dialect.name == "postgresql":
        made = {
            "m_budgets": [k[0] for k, _e in make],
            "m_subjects": [k[1] for k, _e in make],
            "m_starts": [k[2] for k, _e in make],
            "m_ends": [e for _k, e in make],
        }
        rolled, whole = _rolled_params(each)
        params = {"now": now, "rid": request_id, **_pg_key_params(keys), **made, **rolled}
        rows = list(conn.execute(_LOCKED_READ, params))
    elif make:
        make_counters(conn, make)
    if not rows:  # SQLite, no budget applies, or no counter yet (the caller sums them and comes back)
        recorded = is_recorded(conn, request_id)
        return Locked(read(conn, keys, now, exclude_request=request_id, lock=True) if not recorded else {}, recorded)
    if rows[0].recorded:
        return Locked({}, True)
    if any(row.doubtful for row in rows):  # the locks are held now: read again, with a snapshot from after them
        locked = {(row.budget_id, row.subject, row.period_start) for row in rows}
        again = read(conn, keys, now, exclude_request=request_id)
        return Locked({key: counter for key, counter in again.items() if key in locked}, False)  # made since: missing
    found: dict[Key, Counter] = {}
    ids: dict[Key, int] = {}
    for row in rows:
        key = (row.budget_id, row.subject, row.period_start)
        fresh = not row.stale and row.corrections_seen >= row.corrections
        found[key] = Counter(key, row.spend, row.held, row.version, fresh, row.denied)
        ids[key] = row.id
    spends = None
    if whole and not any(row.changed for row in rows):  # the roll-ups as of a snapshot no recording settled after
        rolled_of = {(row.budget_id, row.subject, row.period_start): row.rolled for row in rows}
        spends = {key: rolled_of.get(key) or Decimal(0) for key, _d, _e in each}
    return Locked(found, False, ids, spends)


def each_spend(conn: Connection, items: Sequence[tuple[Key, str, datetime]]) -> dict[Key, Decimal]:
    """The spend of ``each:`` budgets' subjects, ``(key, dimension, period end)`` each: the user's (project's)
    calls in the period, from the entity roll-ups that recording keeps in its transaction (a few rows by
    primary key per period, plus raw calls near ends off UTC midnight), in one statement. Never cached on a
    counter: recording writes nothing per subject for these budgets."""
    found = entity_spends(conn, [(i, dimension, key[1], key[2], end) for i, (key, dimension, end) in enumerate(items)])
    return {items[label][0]: amount for label, amount in found.items()}


def refresh(engine: Engine, budget: Budget, key: Key, period_end: datetime, seen: Counter | None) -> None:
    """Sum the key's spend from the roll-ups and store it, unless a recording changed the row meanwhile.

    An ``each:`` budget's counter is only made (its spend is read at each check, ``each_spend``): it holds
    the subject's holds and denials."""
    with engine.connect() as conn:
        corrections = last_correction(conn)  # read before summing: a reprice after it makes the row stale again
    subject = key[1] or None
    spend = Decimal(0) if budget.scope_kind == "each" else spend_in(engine, budget, key[2], period_end, subject=subject)

    def work(conn: Connection) -> None:
        c = LimitCounter.__table__.c
        if seen is None:
            statement = _insert(conn)(LimitCounter).values(
                budget_id=key[0],
                subject=key[1],
                period_start=key[2],
                period_end=period_end,
                spend=spend,
                held=0,
                version=0,
                stale=False,
                corrections_seen=corrections,
                denied=0,
            )
            # a recording that made the row meanwhile wins: its row is stale and is summed again next time
            conn.execute(statement.on_conflict_do_nothing(index_elements=["budget_id", "subject", "period_start"]))
        else:
            conn.execute(
                update(LimitCounter)
                .where(c.budget_id == key[0], c.subject == key[1], c.period_start == key[2], c.version == seen.version)
                .values(spend=spend, stale=False, corrections_seen=corrections)
            )

    from core.storage.engine import run_write

    run_write(engine, work)


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# one counter row, by key, for an executemany (``k_budget``, ``k_subject``, ``k_start``)
_AT_KEY = (
    LimitCounter.budget_id == bindparam("k_budget"),
    LimitCounter.subject == bindparam("k_subject"),
    LimitCounter.period_start == bindparam("k_start", type_=UTCDateTime()),
)
_DENIED = update(LimitCounter).where(*_AT_KEY).values(denied=LimitCounter.denied + 1)


def _counter_row(key: Key, end: datetime, spend: Decimal, held: Decimal) -> dict[str, Any]:
    """A counter row as an upsert writes it: stale (made by a write that did not sum the period)."""
    return dict(
        budget_id=key[0],
        subject=key[1],
        period_start=key[2],
        period_end=end,
        spend=spend,
        held=held,
        version=0,
        stale=True,
        corrections_seen=0,
        denied=0,
    )


def make_counters(conn: Connection, keys: Sequence[tuple[Key, datetime]]) -> None:
    """Counter rows for these (key, period end) where there is none: nothing held, stale (a budget of one
    scope sums its spend at its next check; an ``each:`` budget's is never on it)."""
    rows = [_counter_row(key, end, Decimal(0), Decimal(0)) for key, end in sorted(keys)]
    if rows:
        statement = _insert(conn)(LimitCounter).on_conflict_do_nothing(
            index_elements=["budget_id", "subject", "period_start"]
        )
        conn.execute(statement, rows)


def count_denial(conn: Connection, keys: Iterable[Key]) -> None:
    """denied += 1 on these counters; the caller holds their locks (a reserve) or took them (``lock_counters``)."""
    rows = [{"k_budget": k[0], "k_subject": k[1], "k_start": k[2]} for k in sorted(keys)]
    if rows:
        conn.execute(_DENIED, rows)


_ADD_HELD = update(LimitCounter).where(*_AT_KEY).values(held=LimitCounter.held + bindparam("k_amount", type_=Money()))


def _add_held_pg() -> Any:
    c = LimitCounter.__table__.c
    k = _pg_keys(amounts=True)
    return update(LimitCounter).where(_on_keys(c, k)).values(held=LimitCounter.held + k.c.a)


_ADD_HELD_PG = _add_held_pg()


def _add_held(conn: Connection, deltas: dict[Key, Decimal]) -> None:
    """held += delta per counter (the caller holds their locks): one statement on PostgreSQL, one executemany
    in key order on SQLite."""
    if deltas and conn.dialect.name == "postgresql":
        keys = sorted(deltas)
        conn.execute(_ADD_HELD_PG, _pg_key_params(keys, [deltas[k] for k in keys]))
    elif deltas:
        rows = [
            {"k_budget": k[0], "k_subject": k[1], "k_start": k[2], "k_amount": amount}
            for k, amount in sorted(deltas.items())
        ]
        conn.execute(_ADD_HELD, rows)


def lock_rank(scope_kind: str, scope_value: str | None) -> int:
    """Where a budget's counters come in the one order every writer locks them in: ``each:user`` counters
    first, then ``each:project``, then the rest; by period (start, end), budget and subject within. Recording
    upserts in this order (its ``each:`` statements first, one per period, rows by budget and subject), so a
    reserve, a sweep and a recording never wait on each other round a loop on PostgreSQL."""
    if scope_kind == "each":
        return 0 if scope_value == "user" else 1
    return 2


def _rank_column() -> Any:
    b = Budget.__table__.c
    return case((b.scope_kind != "each", 2), (b.scope_value == "user", 0), else_=1)


def lock_counters(conn: Connection, keys: Sequence[Key]) -> set[Key]:
    """PostgreSQL: FOR UPDATE on these counter rows, in the lock order (``lock_rank``): what reserve, sweep,
    a denial and a recording that settles holds take before they touch holds. SQLite has one writer.

    Returns the keys locked: a row another transaction made after this statement's snapshot is not among
    them (a later statement may see it, unlocked)."""
    if keys and conn.dialect.name == "postgresql":
        rows = conn.execute(_LOCK, _pg_key_params(sorted(set(keys))))
        return {(row.budget_id, row.subject, row.period_start) for row in rows}
    return set(keys)


_LOCK = _lock_statement()


_HOLD_KEY = (LimitHold.__table__.c.budget_id, LimitHold.__table__.c.subject, LimitHold.__table__.c.period_start)


def _taken(rows: Iterable[Any]) -> dict[Key, Decimal]:
    """What deleted holds (``budget_id, subject, period_start, amount``) held, per counter."""
    found: dict[Key, Decimal] = {}
    for row in rows:
        key = (row.budget_id, row.subject, row.period_start)
        found[key] = found.get(key, Decimal(0)) + row.amount
    return found


SWEEP_BATCH = 2000


def any_expired(conn: Connection, now: datetime) -> bool:
    h = LimitHold.__table__.c
    return conn.execute(select(h.id).where(h.expires_at <= now).limit(1)).first() is not None


def sweep_expired(conn: Connection, now: datetime, batch: int = SWEEP_BATCH) -> int:
    """Release the expired holds of up to ``batch`` counters: delete them and take them off ``held``
    (returns how many counters; fewer than ``batch`` when none is left).

    A check sums the expired holds still on the table (``_read_statement``); a reserve sweeps only the counters it
    locks. Without this, holds left by a client that stopped reserving would be summed by every later
    check. The counters are locked first, then the holds deleted with RETURNING: a hold that a reserve or a
    recording released meanwhile is gone from the DELETE, so nothing is released twice.
    """
    h = LimitHold.__table__.c
    found = select(h.budget_id, h.subject, h.period_start).where(h.expires_at <= now).distinct().limit(batch)
    keys = sorted({(r.budget_id, r.subject, r.period_start) for r in conn.execute(found)})
    if not keys:
        return 0
    lock_counters(conn, keys)
    taken = _take(conn, and_(_holds_of(keys), h.expires_at <= now))
    _add_held(conn, {key: -amount for key, amount in taken.items()})
    return len(keys)


def _holds_of(keys: Sequence[Key]) -> Any:
    """Holds of exactly these counters: the three lists reach ``ix_limit_holds_key``, the row values pick."""
    h = LimitHold.__table__.c
    return and_(
        h.budget_id.in_(sorted({k[0] for k in keys})),
        h.subject.in_(sorted({k[1] for k in keys})),
        h.period_start.in_(sorted({k[2] for k in keys})),
        _key_filter(h, keys),
    )


def _take(conn: Connection, condition: Any) -> dict[Key, Decimal]:
    """Delete the holds matching ``condition`` and say what they held, per counter (DELETE ... RETURNING:
    a hold another transaction released first is not in it, so no hold is ever taken off ``held`` twice)."""
    h = LimitHold.__table__.c
    return _taken(conn.execute(delete(LimitHold).where(condition).returning(*_HOLD_KEY, h.amount)))


def replace_holds(
    conn: Connection,
    request_id: str,
    holds: Sequence[tuple[Key, Decimal]],
    now: datetime,
    expires: datetime,
    *,
    sweep: bool = True,
) -> None:
    """Under the counters' locks: sweep their expired holds (``sweep``: the read under the locks saw some),
    drop this request id's, write the new ones."""
    h = LimitHold.__table__.c
    keys = sorted({key for key, _ in holds})
    if holds and not sweep and conn.dialect.name == "postgresql":
        params = {"rid": request_id, "now": now, "expires": expires}
        conn.execute(_REPLACE_PG, params | _pg_key_params([k for k, _ in holds], [a for _, a in holds]))
        return
    deltas = {key: -amount for key, amount in _take(conn, h.request_id == request_id).items()}
    if keys and sweep:  # a statement of its own: each reaches its index (an OR of the two may scan the table)
        for key, amount in _take(conn, and_(_holds_of(keys), h.expires_at <= now)).items():
            deltas[key] = deltas.get(key, Decimal(0)) - amount
    for key, amount in holds:
        deltas[key] = deltas.get(key, Decimal(0)) + amount
    _add_held(conn, {key: delta for key, delta in deltas.items() if delta})
    if not holds:
        return
    conn.execute(
        insert(LimitHold),
        [
            dict(
                request_id=request_id,
                budget_id=key[0],
                subject=key[1],
                period_start=key[2],
                amount=amount,
                created_at=now,
                expires_at=expires,
            )
            for key, amount in holds
        ],
    )


def hold(
    conn: Connection, request_id: str, ids: Sequence[int], amount: Decimal, now: datetime, expires: datetime
) -> None:
    """PostgreSQL, under the counters' locks, when the request id holds nothing yet and no counter has an expired
    hold (``Locked.ids``): ``amount`` held on each counter (by row id) and a hold row written for each, in one
    statement."""
    params = {"rid": request_id, "ids": list(ids), "amount": amount, "now": now, "expires": expires}
    conn.execute(_HOLD_PG, params)


def _hold_statement() -> Any:
    c = LimitCounter.__table__.c
    amount = bindparam("amount", type_=Money())
    added = (
        update(LimitCounter)
        .where(c.id == any_(cast(bindparam("ids"), ARRAY(BigInteger))))
        .values(held=c.held + amount)
        .returning(c.budget_id, c.subject, c.period_start)
        .cte("added")
    )
    rows = select(
        cast(bindparam("rid", type_=String()), String()),
        added.c.budget_id,
        added.c.subject,
        added.c.period_start,
        amount,
        bindparam("now", type_=UTCDateTime()),
        bindparam("expires", type_=UTCDateTime()),
    )
    names = ["request_id", "budget_id", "subject", "period_start", "amount", "created_at", "expires_at"]
    return insert(LimitHold).from_select(names, rows)


def _replace_statement() -> Any:
    """PostgreSQL: this request id's old holds deleted, the new ones written and both moved onto the counters'
    ``held``, in one statement (its parts see one snapshot: the delete never sees the rows inserted)."""
    h = LimitHold.__table__.c
    c = LimitCounter.__table__.c
    k = _pg_keys(amounts=True)
    rid = bindparam("rid", type_=String())
    columns = (h.budget_id, h.subject, h.period_start, h.amount)
    gone = delete(LimitHold).where(h.request_id == rid).returning(*columns).cte("gone")
    rows = select(
        cast(rid, String()),
        k.c.b,
        k.c.s,
        k.c.p,
        k.c.a,
        bindparam("now", type_=UTCDateTime()),
        bindparam("expires", type_=UTCDateTime()),
    )
    names = ["request_id", "budget_id", "subject", "period_start", "amount", "created_at", "expires_at"]
    made = insert(LimitHold).from_select(names, rows).returning(*columns).cte("made")
    moves = union_all(
        select(made.c.budget_id, made.c.subject, made.c.period_start, made.c.amount),
        select(gone.c.budget_id, gone.c.subject, gone.c.period_start, -gone.c.amount),
    ).subquery("moves")
    delta = (
        select(moves.c.budget_id, moves.c.subject, moves.c.period_start, func.sum(moves.c.amount).label("amount"))
        .group_by(moves.c.budget_id, moves.c.subject, moves.c.period_start)
        .subquery("delta")
    )
    return (
        update(LimitCounter)
        .where(c.budget_id == delta.c.budget_id, c.subject == delta.c.subject, c.period_start == delta.c.period_start)
        .values(held=LimitCounter.held + delta.c.amount)
    )


_REPLACE_PG = _replace_statement()
_HOLD_PG = _hold_statement()
_LOCKED_READ = _locked_read_statement()


def is_recorded(conn: Connection, request_id: str) -> bool:
    return conn.execute(select(UsageRecord.id).where(UsageRecord.request_id == request_id)).first() is not None


# ---- inside the recording transaction -------------------------------------------------------------


def _in_batch(postgres: bool) -> Any:
    """The batch's stored calls, by id (``lo``, ``hi`` and, on PostgreSQL, ``batch_ids``: another writer's ids
    may interleave with ours); see ``_batch_params``."""
    u = UsageRecord.__table__.c
    in_batch: Any = u.id.between(bindparam("lo"), bindparam("hi"))
    if postgres:
        in_batch = and_(in_batch, u.id == any_(cast(bindparam("batch_ids"), ARRAY(BigInteger))))
    return in_batch


def _batch_params(postgres: bool, ids: Sequence[int]) -> dict[str, Any]:
    return {"lo": ids[0], "hi": ids[-1], **({"batch_ids": list(ids)} if postgres else {})}


def batch_sums(
    conn: Connection,
    ids: Sequence[int],
    windows: Sequence[tuple[datetime, datetime]],
    users: Sequence[str],
    projects: Sequence[str],
) -> dict[tuple[int, str, str], Decimal]:
    """The batch's stored cost per window (its index), summed in SQL for what budgets of one scope read:
    ``(i, "all", "")``, ``(i, "provider", P)``, ``(i, "model", M)`` and, for the users and projects given
    (those of ``user:`` / ``project:`` budgets), ``(i, "user", U)`` and ``(i, "project", X)``. A window the
    batch has no call in has no entry. One statement, grouped three ways; no call is read into Python."""
    if not windows:
        return {}
    logs = UsageRecord.__table__.c
    postgres = conn.dialect.name == "postgresql"
    # the batch read once by its ids (a CTE used three times is materialized), then grouped three ways
    u = (
        select(logs.provider, logs.model, logs.user_id, logs.project, logs.timestamp, logs.cost_total)
        .where(_in_batch(postgres))
        .cte("batch")
        .c
    )
    inside = [and_(u.timestamp >= start, u.timestamp < end) for start, end in windows]
    sums = [
        type_coerce(func.sum(case((w, u.cost_total), else_=0)), Money()).label(f"s{i}") for i, w in enumerate(inside)
    ]
    counts = [func.sum(case((w, 1), else_=0)).label(f"n{i}") for i, w in enumerate(inside)]
    parts = [select(literal("pm").label("kind"), u.provider, u.model, *sums, *counts).group_by(u.provider, u.model)]
    for kind, column, wanted in (("user", u.user_id, users), ("project", u.project, projects)):
        if wanted:
            parts.append(
                select(literal(kind), column, literal(""), *sums, *counts)
                .where(column.in_(sorted(set(wanted))))
                .group_by(column)
            )
    found: dict[tuple[int, str, str], Decimal] = {}
    statement = union_all(*parts) if len(parts) > 1 else parts[0]
    if postgres:
        # a few hundred rows by primary key, but costed past parallel_setup_cost: two workers took 5-7 ms to
        # start for 0.5 ms of work (EXPLAIN ANALYZE of a batch of 500 at 1M calls); kept to this transaction
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
    for row in conn.execute(statement, _batch_params(postgres, ids)):
        for i in range(len(windows)):
            if not row[3 + len(windows) + i]:  # no call of this group in window i
                continue
            amount = row[3 + i]
            if row[0] == "pm":
                keys = [(i, "all", ""), (i, "provider", row[1]), (i, "model", row[2])]
            else:
                keys = [(i, row[0], row[1])]
            for key in keys:
                found[key] = found.get(key, Decimal(0)) + amount
    return found


def _request_ids(conn: Connection, chunk: Sequence[str]) -> Any:
    h = LimitHold.__table__.c
    if conn.dialect.name == "postgresql":
        return h.request_id == any_(cast(bindparam("rids", list(chunk)), ARRAY(String)))
    return h.request_id.in_(list(chunk))


def hold_keys(conn: Connection, request_ids: Sequence[str]) -> set[Key]:
    """The counters the holds of these request ids are on (read without locks: which rows to lock)."""
    found: set[Key] = set()
    for start in range(0, len(request_ids), 500):
        query = select(*_HOLD_KEY).where(_request_ids(conn, request_ids[start : start + 500])).distinct()
        found.update((row.budget_id, row.subject, row.period_start) for row in conn.execute(query))
    return found


def settle(conn: Connection, request_ids: Sequence[str]) -> dict[Key, Decimal]:
    """Delete the holds of these request ids (their calls are recorded) and say what they held, per counter.
    The caller holds the counters' locks (``lock_counters``), as reserve and sweep do before touching holds."""
    settled: dict[Key, Decimal] = {}
    for start in range(0, len(request_ids), 500):
        for key, amount in _take(conn, _request_ids(conn, request_ids[start : start + 500])).items():
            settled[key] = settled.get(key, Decimal(0)) + amount
    return settled


def _apply_recorded_statement(postgres: bool) -> Any:
    """The upsert of ``apply_recorded``, made once. PostgreSQL: the rows as arrays unnested in their order (with
    ordinality), one statement whatever their number; SQLite: one row of parameters each (an executemany)."""
    c = LimitCounter.__table__.c
    if postgres:
        arrays = [
            cast(bindparam("k_budgets"), ARRAY(BigInteger)),
            cast(bindparam("k_subjects"), ARRAY(String)),
            cast(bindparam("k_starts"), ARRAY(postgresql.TIMESTAMP(timezone=True))),
            cast(bindparam("k_ends"), ARRAY(postgresql.TIMESTAMP(timezone=True))),
            cast(bindparam("k_spends"), ARRAY(Numeric)),
            cast(bindparam("k_helds"), ARRAY(Numeric)),
        ]
        k = func.unnest(*arrays).table_valued("b", "s", "p", "e", "sp", "h", with_ordinality="n").render_derived("k")
        rows = select(k.c.b, k.c.s, k.c.p, k.c.e, k.c.sp, k.c.h, literal(0), true(), literal(0), literal(0)).order_by(
            k.c.n
        )
        names = ["budget_id", "subject", "period_start", "period_end", "spend", "held", "version", "stale"]
        upsert: Any = postgresql.insert(LimitCounter).from_select([*names, "corrections_seen", "denied"], rows)
    else:
        upsert = sqlite.insert(LimitCounter)
    return upsert.on_conflict_do_update(
        index_elements=["budget_id", "subject", "period_start"],
        set_={
            "spend": c.spend + upsert.excluded.spend,
            "held": c.held - upsert.excluded.held,
            "version": c.version + 1,
        },
    )


_APPLY_RECORDED = {postgres: _apply_recorded_statement(postgres) for postgres in (False, True)}


def apply_recorded(
    conn: Connection,
    added: dict[Key, tuple[datetime, Decimal]],
    settled: dict[Key, Decimal],
    ranks: dict[int, int],
) -> None:
    """spend += the batch's cost and held -= its settled holds, in one statement over the keys in the lock order
    (``ranks``: budget id -> ``lock_rank``); a counter recording makes is stale (it holds only this batch)."""

    # a settled hold's counter exists (the reserve made it), so its row is updated, never inserted
    def order(k: Key) -> tuple[Any, ...]:  # settled-only rows are locked already; their place does not matter
        return (ranks.get(k[0], 2), k[2], added[k][0] if k in added else k[2], k[0], k[1])

    keys = sorted(set(added) | set(settled), key=order)
    if not keys:
        return
    ends = [added[key][0] if key in added else key[2] for key in keys]
    spends = [added[key][1] if key in added else Decimal(0) for key in keys]
    helds = [settled.get(key, Decimal(0)) for key in keys]
    if conn.dialect.name == "postgresql":
        params = _pg_key_params(keys) | {"k_ends": ends, "k_spends": spends, "k_helds": helds}
        conn.execute(_APPLY_RECORDED[True], params)
        return
    rows = [_counter_row(*row) for row in zip(keys, ends, spends, helds, strict=True)]
    conn.execute(_APPLY_RECORDED[False], rows)


def subjects_matching(
    conn: Connection, budget_id: int, dimension: str, start: datetime, end: datetime, search: str, limit: int
) -> list[str]:
    """An ``each:`` budget's users (projects) whose name contains ``search``: those with the most spend in
    [start, end) widened to whole UTC days (the entity roll-ups' day rows; the caller sums their exact spend),
    then those with a counter this period (a hold or a denial, spent or not): at most ``limit`` of each."""
    e = EntityRollup.__table__.c
    c = LimitCounter.__table__.c
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    first = int(start.timestamp()) // DAY * DAY
    spent = (
        select(e.entity)
        .where(
            e.dimension == dimension,
            e.grain == DAY,
            e.bucket_start >= first,
            e.bucket_start < int(end.timestamp()),
            e.entity != "",
            e.entity.like(pattern, escape="\\"),
        )
        .group_by(e.entity)
        .order_by(func.sum(e.cost_total).desc(), e.entity)
        .limit(limit)
    )
    counted = (
        select(c.subject)
        .where(c.budget_id == budget_id, c.period_start == start, c.subject.like(pattern, escape="\\"))
        .order_by(c.denied.desc(), c.subject)
        .limit(limit)
    )
    found = [row.entity for row in conn.execute(spent)]
    return found + [row.subject for row in conn.execute(counted) if row.subject not in found]


def denials(conn: Connection, periods: dict[int, datetime]) -> dict[int, int]:
    """Checks denied this period, per budget id."""
    if not periods:
        return {}
    c = LimitCounter.__table__.c
    query = (
        select(c.budget_id, func.sum(c.denied))
        .where(or_(*(and_(c.budget_id == b, c.period_start == start) for b, start in periods.items())))
        .group_by(c.budget_id)
    )
    return {row[0]: int(row[1] or 0) for row in conn.execute(query)}


def denied_of(conn: Connection, budget_id: int, period_start: datetime, subjects: Sequence[str]) -> dict[str, int]:
    """Checks denied this period for these subjects of a budget (a handful: the page's top N)."""
    if not subjects:
        return {}
    c = LimitCounter.__table__.c
    query = select(c.subject, c.denied).where(
        c.budget_id == budget_id, c.period_start == period_start, c.subject.in_(list(subjects))
    )
    return {row.subject: row.denied for row in conn.execute(query)}
