"""Recording calls: one or a batch, each one transaction, priced when recorded.

A ``request_id`` is recorded once: a call whose id is already stored (or earlier
in the same batch) is skipped, not an error. The roll-ups are updated in the same
transaction as the rows they sum.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import ARRAY, Connection, Engine, String, any_, bindparam, cast, func, insert, select
from sqlalchemy.exc import OperationalError

from core.money import from_pico
from core.pricing.formula import price_call
from core.pricing.lookup import PriceIndex, price_book
from core.pricing.rates import STANDARD, PriceMatch, PricingError, Usage, parse_service_tier
from core.pricing.validation import NAME_LIMITS, clean_name, validate_call, validate_tokens, validate_usage
from core.recording import hooks
from core.recording.overflow import SumOverflowError, is_sum_overflow, refuse_overflow
from core.recording.rollups import add_stored_tags, add_stored_to_rollups
from core.recording.tags import TagError, parse_tags
from core.storage.columns import Money
from core.storage.engine import run_write
from core.storage.tables import UsageRecord
from core.times import TimeError, now_utc, parse_timestamp

ID_CHUNK = 500


class CallError(ValueError):
    """A call that cannot be recorded; the message names the field and the value."""


class PricedPastLimitError(CallError, PricingError):
    """A call priced above what one call may cost: a call error (refused alone) and a pricing error."""


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
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    service_tier: str = STANDARD
    project: str | None = None
    latency_ms: int | None = None
    status: str = "ok"
    tags: tuple[str, ...] = ()  # distinct, validated by core.recording.tags.parse_tags
    hold_id: str | None = None  # not stored: the hold an enforcing check placed before the call, settled with it

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.reasoning_tokens,
            self.web_search_calls,
        )


STATUSES = ("ok", "error")
MAX_LATENCY_MS = 7 * 24 * 3600 * 1000


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
    cache_write_tokens: object = 0,
    cache_write_1h_tokens: object = 0,
    reasoning_tokens: object = 0,
    web_search_calls: object = 0,
    service_tier: object = STANDARD,
    project: object = None,
    latency_ms: object = None,
    status: object = "ok",
    tags: object = None,
) -> Call:
    """Validate raw values (from the CLI, a file, a form or an API) into a :class:`Call`."""
    try:
        if isinstance(provider, str) and isinstance(model, str):
            provider_clean, model_clean = _names(provider, model)
        else:
            provider_clean, model_clean = validate_call(provider, model, 0, 0, 0)[:2]  # type: ignore[arg-type]
        if (
            not cache_write_tokens
            and not cache_write_1h_tokens
            and not reasoning_tokens
            and not web_search_calls
            and type(input_tokens) is int
            and type(output_tokens) is int
            and type(cached_input_tokens) is int
            and 0 <= cached_input_tokens <= input_tokens <= MAX_TOKENS_FAST
            and 0 <= output_tokens <= MAX_TOKENS_FAST
        ):  # the common shape, checked at C speed; anything else gets the full check and its message
            usage = Usage(input_tokens, output_tokens, cached_input_tokens)
        else:
            usage = validate_usage(
                input_tokens,
                output_tokens,
                cached_input_tokens,
                cache_write_tokens,
                cache_write_1h_tokens,
                reasoning_tokens,
                web_search_calls,
            )
        tier = STANDARD if service_tier == STANDARD else parse_service_tier(service_tier)
        project_clean = (
            None
            if project is None or (isinstance(project, str) and not project.strip())
            else (_project(project) if isinstance(project, str) else clean_name(project, "project"))
        )
        latency = None if latency_ms is None or latency_ms == "" else _latency(latency_ms)
        status_clean = "ok" if status is None or status == "ok" or status == "" else _status(status)
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
        tags_clean = () if tags is None else parse_tags(tags)
    except (PricingError, TimeError, TagError) as exc:
        raise CallError(str(exc)) from None
    return Call(
        moment,
        provider_clean,
        model_clean,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        user_clean,
        request_clean,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.reasoning_tokens,
        usage.web_search_calls,
        tier,
        project_clean,
        latency,
        status_clean,
        tags_clean,
    )


MAX_TOKENS_FAST = 10**12


def _latency(value: object) -> int:
    try:
        latency = validate_tokens(value, "latency_ms") if not isinstance(value, float) else _latency_float(value)
    except PricingError as exc:
        message = str(exc).replace("tokens", "milliseconds")
        if "above the limit" in message:
            message = f"latency_ms: {value!r} is above the limit of {MAX_LATENCY_MS:,} milliseconds (7 days)"
        raise PricingError(message) from None
    if latency > MAX_LATENCY_MS:
        raise PricingError(f"latency_ms: {value!r} is above the limit of {MAX_LATENCY_MS:,} milliseconds (7 days)")
    return latency


def _latency_float(value: float) -> int:
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise PricingError(f"latency_ms: {value!r} is not a duration in milliseconds")
    if value > MAX_LATENCY_MS:
        raise PricingError(f"latency_ms: {value!r} is above the limit of {MAX_LATENCY_MS:,} milliseconds (7 days)")
    return round(value)


def _status(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in STATUSES:
        return value.strip().lower()
    raise PricingError(f"status: {value!r} is not one of {', '.join(STATUSES)}")


@lru_cache(maxsize=4096)
def _project(project: str) -> str:
    return clean_name(project, "project")


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
        self._times = index.change_times()
        self._cache: dict[tuple[str, str, str, int], PriceMatch] = {}

    def match(self, provider: str, model: str, moment: datetime, epoch: float, tier: str = STANDARD) -> PriceMatch:
        key = (provider, model, tier, bisect_right(self._times, epoch))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._index.lookup(provider, model, moment, tier)
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
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "web_search_calls",
    "service_tier",
    "price_service_tier",
    "tier",
    "project",
    "latency_ms",
    "status",
    "cost_web_search",
    "cost_request",
    "tags",
)
# priced in whole pico-dollars
PICO_COLUMNS = frozenset({"cost_input", "cost_output", "cost_total", "cost_web_search", "cost_request"})
RECORDED_AT = LOG_COLUMNS.index("recorded_at")
TAGS = LOG_COLUMNS.index("tags")


def tags_text(tags: tuple[str, ...]) -> str | None:
    """A call's tags as stored in ``api_usage_logs.tags``: a JSON list, NULL when there are none."""
    return json.dumps(list(tags), ensure_ascii=False) if tags else None


def _price_rows(index: PriceIndex, calls: Sequence[Call], recorded_at: datetime) -> list[tuple]:
    """Insert values for each call, in LOG_COLUMNS order; costs priced once, exact, in whole pico-dollars."""
    rows: list[tuple] = []
    pricer = _Pricer(index)
    for call in calls:
        moment = call.timestamp
        epoch = moment.timestamp()
        match = pricer.match(call.provider, call.model, moment, epoch, call.service_tier)
        price = match.price
        try:
            cost = price_call(price, call.usage)
        except PricingError as exc:  # above the limit of one call: this call's refusal
            raise PricedPastLimitError(str(exc)) from None
        rows.append(
            (
                moment,
                call.provider,
                call.model,
                call.user,
                call.request_id,
                call.input_tokens,
                call.output_tokens,
                call.cached_input_tokens,
                cost.cost_input,
                cost.cost_output,
                cost.cost_total,
                price.pricing_id,
                match.matched_by,
                recorded_at,
                call.cache_write_tokens,
                call.cache_write_1h_tokens,
                call.reasoning_tokens,
                call.web_search_calls,
                call.service_tier,
                price.service_tier if price.pricing_id is not None else call.service_tier,
                cost.tier,
                call.project,
                call.latency_ms,
                call.status,
                cost.web_search,
                cost.request,
                tags_text(call.tags),
            )
        )
    return rows


def _any_tagged(rows: list[tuple]) -> bool:
    """Whether any row of the batch carries tags: an untagged batch skips the tag roll-ups' statement."""
    return any(row[TAGS] for row in rows)


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
    # Calls in random time order (and random request ids) touch index pages all over a
    # large log: SQLite's default 2 MB page cache made each batch re-read them.
    conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MB, pages held only as used
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
    constant = {RECORDED_AT}  # the same for every row: processed once
    per_row = [(i, p) for i, p in enumerate(processors) if p is not None and i not in constant]
    recorded_at = processors[RECORDED_AT]
    fixed = recorded_at(rows[0][RECORDED_AT]) if recorded_at else rows[0][RECORDED_AT]
    params = []
    for row in rows:
        values = list(row)
        for i, process in per_row:
            values[i] = process(values[i])
        values[RECORDED_AT] = fixed
        params.append(tuple(values))
    before = conn.execute(select(func.coalesce(func.max(UsageRecord.id), 0))).scalar_one()
    conn.exec_driver_sql(sql, params)
    ids = tuple(conn.execute(select(UsageRecord.id).where(UsageRecord.id > before).order_by(UsageRecord.id)).scalars())
    if len(ids) != len(rows):
        raise RuntimeError(f"stored {len(ids)} rows for {len(rows)} calls; the write lock was not held")
    add_stored_tags(conn, ids[0], ids[-1])
    add_stored_to_rollups(conn, ids[0], ids[-1], tagged=_any_tagged(rows))
    refuse_overflow(conn, ids[0], ids[-1])
    return ids


STAGING = "spendboard_usage_staging"
_COLUMN_LIST = ", ".join(LOG_COLUMNS)
# statement text made once from constant names (no value is ever spliced in)
CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM api_usage_logs WITH NO DATA"
)
COPY_STAGING = f"COPY {STAGING} ({_COLUMN_LIST}) FROM STDIN"
INSERT_STAGED = (
    f"INSERT INTO api_usage_logs ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {STAGING} "  # noqa: S608
    # one order for every writer: two batches sharing request ids wait on each other in the
    # same order on the unique index instead of deadlocking
    "ORDER BY request_id ON CONFLICT (request_id) DO NOTHING RETURNING id"
)
EMPTY_STAGING = f"TRUNCATE {STAGING}"


def _insert_postgresql(conn: Connection, rows: list[tuple]) -> tuple[int, ...]:
    """COPY into a temporary staging table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING.

    PostgreSQL writers run concurrently: another may store one of these request ids after
    our check, so the conflict clause (on the unique index) decides, and the roll-ups take
    only the rows this transaction stored (their ids may interleave with another writer's).
    The staging table lives as long as the connection and is emptied at commit.
    """
    conn.exec_driver_sql(CREATE_STAGING)
    money = [i for i, name in enumerate(LOG_COLUMNS) if name in PICO_COLUMNS]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(COPY_STAGING) as copy:
            write = copy.write_row
            for row in rows:
                values = list(row)
                for i in money:
                    values[i] = from_pico(values[i])
                write(values)
    finally:
        cursor.close()
    returned = conn.exec_driver_sql(INSERT_STAGED).scalars()
    ids = tuple(sorted(returned))
    conn.exec_driver_sql(EMPTY_STAGING)
    if ids:
        add_stored_tags(conn, ids[0], ids[-1], ids)
        add_stored_to_rollups(conn, ids[0], ids[-1], ids, tagged=_any_tagged(rows))
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
            ids = _insert_postgresql(conn, rows)
        hooks.run_in_transaction(conn, fresh, ids)
        return BatchResult(len(ids), len(calls) - len(ids), ids)

    try:
        result = run_write(engine, work)
    except SumOverflowError as exc:
        raise CallError(str(exc)) from None
    except OperationalError as exc:
        if is_sum_overflow(exc):  # SQLite's sum() of the batch itself
            raise CallError(SumOverflowError().args[0]) from None
        raise
    if result.recorded:  # after the commit, outside its lock (budgets: a no-op while there are none)
        hooks.run_after_commit(engine, calls)
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
            if not 1 <= log_id <= 2**63 - 1:  # no row has it; the database would refuse the number itself
                return None
            return session.get(UsageRecord, log_id)
        return session.scalars(select(UsageRecord).where(UsageRecord.request_id == request_id)).first()


CALL_FIELDS = (
    "timestamp",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "web_search_calls",
    "service_tier",
    "project",
    "latency_ms",
    "status",
    "user",
    "request_id",
    "usage",
    "tags",
)
TOKEN_FIELDS = tuple(f.name for f in dataclass_fields(Usage))  # every count of a call's usage


def usage_counts(usage: object) -> dict[str, object]:
    """A provider's usage object (OpenAI, Anthropic, Gemini, as returned) as the call's count fields."""
    from core.pricing.provider_usage import UsageShapeError, normalise_usage

    try:
        fields = normalise_usage(usage)
    except UsageShapeError as exc:
        raise CallError(str(exc) if str(exc).startswith("usage") else f"usage: {exc}") from None
    counts: dict[str, object] = {name: getattr(fields, name) for name in TOKEN_FIELDS}
    if getattr(fields, "service_tier", None):
        counts["service_tier"] = fields.service_tier
    return counts


def call_from_mapping(
    raw: Mapping[str, object], *, now: datetime | None = None, default_project: str | None = None
) -> Call:
    """A call from a dict with the import's field names (timestamp, provider, model, ...; see CALL_FIELDS).

    ``usage`` (a provider's usage object) replaces the token fields; giving both is refused.
    """
    values: dict[str, object] = dict(raw)
    usage = values.pop("usage", None)
    if usage is not None:
        given = [name for name in TOKEN_FIELDS if values.get(name) not in (None, "", 0)]
        if given:
            raise CallError(f"usage: given together with {', '.join(given)}; send one or the other")
        counts = usage_counts(usage)
        if values.get("service_tier") in (None, "") and "service_tier" in counts:
            values["service_tier"] = counts.pop("service_tier")
        counts.pop("service_tier", None)
        values.update(counts)
    project = values.get("project")
    return make_call(
        values.get("provider"),
        values.get("model"),
        values.get("input_tokens"),
        values.get("output_tokens"),
        values.get("cached_input_tokens") or 0,
        values.get("user"),
        values.get("request_id"),
        values.get("timestamp"),
        now=now,
        cache_write_tokens=values.get("cache_write_tokens") or 0,
        cache_write_1h_tokens=values.get("cache_write_1h_tokens") or 0,
        reasoning_tokens=values.get("reasoning_tokens") or 0,
        web_search_calls=values.get("web_search_calls") or 0,
        service_tier=values.get("service_tier") or STANDARD,
        project=project if project not in (None, "") else default_project,
        latency_ms=values.get("latency_ms"),
        status=values.get("status") or "ok",
        tags=values.get("tags"),
    )
