"""Recording calls: one or a batch, each one transaction, priced when recorded.

A ``request_id`` is recorded once: a call whose id is already stored (or earlier
in the same batch) is skipped, not an error. The roll-ups are updated in the same
transaction as the rows they sum.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import ARRAY, Connection, Engine, String, any_, bindparam, cast, func, insert, select
from sqlalchemy.dialects import postgresql

from core.columns import Money
from core.db import run_write
from core.models import UsageRecord
from core.money import from_pico
from core.pricing import (
    NAME_LIMITS,
    PriceIndex,
    PriceMatch,
    PricingError,
    clean_name,
    cost_in_pico,
    price_book,
    validate_call,
    validate_tokens,
)
from core.rollups import add_stored_to_rollups
from core.times import TimeError, now_utc, parse_timestamp

ID_CHUNK = 500


class CallError(ValueError):
    """A call that cannot be recorded; the message names the field and the value."""


@dataclass(frozen=True)
class Call:
    """A validated call, ready to price and store."""

    timestamp: datetime
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    user: str | None = None
    request_id: str | None = None


def make_call(
    provider: object,
    model: object,
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object = 0,
    user: object = None,
    request_id: object = None,
    timestamp: object = None,
    *,
    now: datetime | None = None,
) -> Call:
    """Validate raw values (from the CLI, a file, a form or an API) into a :class:`Call`."""
    try:
        if isinstance(provider, str) and isinstance(model, str):
            provider_clean, model_clean = _names(provider, model)
        else:
            provider_clean, model_clean = validate_call(provider, model, 0, 0, 0)[:2]  # type: ignore[arg-type]
        tokens_in = validate_tokens(input_tokens, "input_tokens")
        tokens_out = validate_tokens(output_tokens, "output_tokens")
        cached = validate_tokens(0 if cached_input_tokens is None else cached_input_tokens, "cached_input_tokens")
        if cached > tokens_in:  # let the pricing rules word the refusal
            validate_call(provider_clean, model_clean, tokens_in, tokens_out, cached)
        user_clean = (
            None
            if user is None or (isinstance(user, str) and not user.strip())
            else (_user(user) if isinstance(user, str) else clean_name(user, "user"))
        )
        request_clean = (
            None
            if request_id is None or (isinstance(request_id, str) and not request_id.strip())
            else _request_id(request_id)
        )
        moment = (now or now_utc()) if timestamp is None else parse_timestamp(timestamp, "timestamp", now=now)
    except (PricingError, TimeError) as exc:
        raise CallError(str(exc)) from None
    return Call(moment, provider_clean, model_clean, tokens_in, tokens_out, cached, user_clean, request_clean)


@lru_cache(maxsize=4096)
def _names(provider: str, model: str) -> tuple[str, str]:
    """Provider and model checked once per distinct pair: an import repeats a few pairs millions of times."""
    return validate_call(provider, model, 0, 0, 0)[:2]


@lru_cache(maxsize=4096)
def _user(user: str) -> str:
    return clean_name(user, "user")


REQUEST_ID_LIMIT = NAME_LIMITS["request_id"]


def _request_id(value: object) -> str:
    """Printable ASCII within the limit is accepted at C speed; anything else gets the full check and its message."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= REQUEST_ID_LIMIT and text.isascii() and text.isprintable():
            return text
    return clean_name(value, "request_id")


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: calls stored, and calls skipped because their request_id was known."""

    recorded: int
    duplicates: int
    ids: tuple[int, ...] = ()


def _known_request_ids(conn: Connection, request_ids: list[str]) -> set[str]:
    """Which of these request ids are stored already: one query per chunk, never one per call."""
    known: set[str] = set()
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(request_ids), ID_CHUNK):
        chunk = request_ids[start : start + ID_CHUNK]
        if postgres:
            # one array parameter: psycopg prepares repeated statements, and PostgreSQL's generic
            # plan for a long IN list of parameters scans the table instead of the unique index
            matches = UsageRecord.request_id == any_(cast(bindparam("ids", chunk), ARRAY(String)))
        else:
            matches = UsageRecord.request_id.in_(chunk)
        found = conn.execute(select(UsageRecord.request_id).where(matches)).scalars()
        known.update(rid for rid in found if rid is not None)
    return known


class _Pricer:
    """Looks each (provider, model) up once per span between price changes, not once per call.

    Between two consecutive ``effective_from`` times of any version the lookup chain's
    answer for a given name cannot change, so the match is memoised per span.
    """

    def __init__(self, index: PriceIndex) -> None:
        self._index = index
        versions = getattr(index, "_versions", None)
        self._times: list[float] | None = (
            sorted({t for times, _prices in versions.values() for t in times}) if versions is not None else None
        )
        self._cache: dict[tuple[str, str, int], PriceMatch] = {}

    def match(self, provider: str, model: str, moment: datetime, epoch: float) -> PriceMatch:
        if self._times is None:
            return self._index.lookup(provider, model, moment)
        key = (provider, model, bisect_right(self._times, epoch))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._index.lookup(provider, model, moment)
        return found


LOG_COLUMNS = (
    "timestamp",
    "provider",
    "model",
    "user_id",
    "request_id",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_input",
    "cost_output",
    "cost_total",
    "pricing_id",
    "matched_by",
    "recorded_at",
)
PICO_COLUMNS = frozenset({"cost_input", "cost_output", "cost_total"})  # priced in whole pico-dollars


def _price_rows(index: PriceIndex, calls: Sequence[Call], recorded_at: datetime) -> list[tuple]:
    """Insert values for each call, in LOG_COLUMNS order; costs priced once, exact, in whole pico-dollars."""
    rows: list[tuple] = []
    pricer = _Pricer(index)
    for call in calls:
        moment = call.timestamp
        epoch = moment.timestamp()
        match = pricer.match(call.provider, call.model, moment, epoch)
        price = match.price
        cached = call.cached_input_tokens
        cost_input, cost_output, cost_total = cost_in_pico(price, call.input_tokens, call.output_tokens, cached)
        rows.append(
            (
                moment,
                call.provider,
                call.model,
                call.user,
                call.request_id,
                call.input_tokens,
                call.output_tokens,
                cached,
                cost_input,
                cost_output,
                cost_total,
                price.pricing_id,
                match.matched_by,
                recorded_at,
            )
        )
    return rows


def _insert_sqlite(conn: Connection, rows: list[tuple]) -> tuple[int, ...]:
    """One executemany of the compiled INSERT, then roll-ups summed in SQL from the rows just stored.

    The write lock is held since BEGIN IMMEDIATE and known ids were skipped, so nothing
    can conflict, and the new rows are exactly those above the highest id before. Each
    value still goes through its column type's processor (money, priced in pico-dollars, through
    ``Money.pico_processor``, so it stays exact);
    only SQLAlchemy's per-row parameter assembly is skipped, which was most of the time.
    """
    dialect = conn.dialect
    columns = UsageRecord.__table__.c
    compiled = insert(UsageRecord).compile(dialect=dialect, column_keys=list(LOG_COLUMNS))
    if tuple(compiled.positiontup or ()) != LOG_COLUMNS:
        raise RuntimeError(f"unexpected INSERT parameter order {compiled.positiontup}")
    sql = str(compiled)
    # dialect_impl: the processor SQLAlchemy itself uses (a TypeDecorator's own bind_processor
    # falls back to its generic impl, which would store instants in another text form).
    processors = [
        Money.pico_processor(dialect)
        if name in PICO_COLUMNS
        else columns[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in LOG_COLUMNS
    ]
    constant = {LOG_COLUMNS.index("recorded_at")}  # the same for every row: processed once
    per_row = [(i, p) for i, p in enumerate(processors) if p is not None and i not in constant]
    recorded_at = processors[LOG_COLUMNS.index("recorded_at")]
    fixed = recorded_at(rows[0][-1]) if recorded_at else rows[0][-1]
    params = []
    for row in rows:
        values = list(row)
        for i, process in per_row:
            values[i] = process(values[i])
        values[-1] = fixed
        params.append(tuple(values))
    before = conn.execute(select(func.coalesce(func.max(UsageRecord.id), 0))).scalar_one()
    conn.exec_driver_sql(sql, params)
    ids = tuple(conn.execute(select(UsageRecord.id).where(UsageRecord.id > before).order_by(UsageRecord.id)).scalars())
    if len(ids) != len(rows):
        raise RuntimeError(f"stored {len(ids)} rows for {len(rows)} calls; the write lock was not held")
    add_stored_to_rollups(conn, ids[0], ids[-1])
    return ids


def record_batch(engine: Engine, calls: Sequence[Call]) -> BatchResult:
    """Price and store calls in one transaction; known request_ids are skipped."""
    if not calls:
        return BatchResult(0, 0)

    def work(conn: Connection) -> BatchResult:
        index = price_book(engine).index(conn)
        seen: set[str] = set()
        unique: list[Call] = []
        for call in calls:
            if call.request_id is not None:
                if call.request_id in seen:
                    continue
                seen.add(call.request_id)
            unique.append(call)
        known = _known_request_ids(conn, list(seen)) if seen else set()
        fresh = [c for c in unique if c.request_id is None or c.request_id not in known] if known else unique
        sqlite = conn.dialect.name == "sqlite"
        rows = _price_rows(index, fresh, datetime.now(UTC))
        if not rows:
            return BatchResult(0, len(calls))
        if sqlite:
            ids = _insert_sqlite(conn, rows)
        else:
            # PostgreSQL writers run concurrently: one may store an id after our check.
            statement = postgresql.insert(UsageRecord).on_conflict_do_nothing(index_elements=["request_id"])
            params = [
                {name: from_pico(v) if name in PICO_COLUMNS else v for name, v in zip(LOG_COLUMNS, row, strict=True)}
                for row in rows
            ]
            returned = conn.execute(statement.returning(UsageRecord.id, UsageRecord.request_id), params).all()
            ids = tuple(sorted(r.id for r in returned))
            if ids:  # only the rows this transaction stored: ids of concurrent writers may interleave
                add_stored_to_rollups(conn, ids[0], ids[-1], ids)
        return BatchResult(len(ids), len(calls) - len(ids), ids)

    result = run_write(engine, work)
    if result.recorded:  # after the commit, outside its lock; a no-op while there are no budgets
        from core.budgets.detect import on_recorded

        on_recorded(engine, calls)
    return result


@dataclass(frozen=True)
class RecordedCall:
    """A stored call as the CLI and pages show it."""

    id: int | None
    duplicate: bool
    request_id: str | None


def record_usage(engine: Engine, call: Call) -> RecordedCall:
    """Record one call; if its request_id is already stored, nothing changes and the stored id is returned."""
    result = record_batch(engine, [call])
    if result.recorded:
        return RecordedCall(result.ids[0], False, call.request_id)
    with engine.connect() as conn:
        existing = conn.execute(select(UsageRecord.id).where(UsageRecord.request_id == call.request_id)).scalar()
    return RecordedCall(existing, True, call.request_id)


def get_call(engine: Engine, log_id: int | None = None, request_id: str | None = None) -> UsageRecord | None:
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        if log_id is not None:
            return session.get(UsageRecord, log_id)
        return session.scalars(select(UsageRecord).where(UsageRecord.request_id == request_id)).first()


def call_from_mapping(raw: Mapping[str, object], *, now: datetime | None = None) -> Call:
    """A call from a dict with the import's field names (timestamp, provider, model, ...)."""
    return make_call(
        raw.get("provider"),
        raw.get("model"),
        raw.get("input_tokens"),
        raw.get("output_tokens"),
        raw.get("cached_input_tokens") or 0,
        raw.get("user"),
        raw.get("request_id"),
        raw.get("timestamp"),
        now=now,
    )
