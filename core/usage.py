"""Recording calls: one or a batch, each one transaction, priced when recorded.

A ``request_id`` is recorded once: a call whose id is already stored (or earlier
in the same batch) is skipped, not an error. The roll-ups are updated in the same
transaction as the rows they sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from core.db import run_write
from core.models import UsageRecord
from core.money import from_pico
from core.pricing import PriceIndex, PricingError, clean_name, cost_in_pico, price_book, validate_call
from core.rollups import RolledCall, add_to_rollups, aggregate
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
        provider_clean, model_clean, tokens_in, tokens_out, cached = validate_call(
            provider, model, input_tokens, output_tokens, cached_input_tokens
        )  # type: ignore[arg-type]
        user_clean = None if user is None or (isinstance(user, str) and not user.strip()) else clean_name(user, "user")
        request_clean = (
            None
            if request_id is None or (isinstance(request_id, str) and not request_id.strip())
            else clean_name(request_id, "request_id")
        )
        moment = (now or now_utc()) if timestamp is None else parse_timestamp(timestamp, "timestamp", now=now)
    except (PricingError, TimeError) as exc:
        raise CallError(str(exc)) from None
    return Call(moment, provider_clean, model_clean, tokens_in, tokens_out, cached, user_clean, request_clean)


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: calls stored, and calls skipped because their request_id was known."""

    recorded: int
    duplicates: int
    ids: tuple[int, ...] = ()


def _insert_for(conn: Connection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _known_request_ids(conn: Connection, request_ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(request_ids), ID_CHUNK):
        chunk = request_ids[start : start + ID_CHUNK]
        known.update(conn.execute(select(UsageRecord.request_id).where(UsageRecord.request_id.in_(chunk))).scalars())
    return known  # type: ignore[return-value]


def _price_rows(index: PriceIndex, calls: Sequence[Call], recorded_at: datetime) -> tuple[list[dict], list[RolledCall]]:
    rows: list[dict] = []
    rolled: list[RolledCall] = []
    for call in calls:
        match = index.lookup(call.provider, call.model, call.timestamp)
        cost_input, cost_output, cost_total = cost_in_pico(
            match.price, call.input_tokens, call.output_tokens, call.cached_input_tokens
        )
        rows.append(
            {
                "timestamp": call.timestamp,
                "provider": call.provider,
                "model": call.model,
                "user_id": call.user,
                "request_id": call.request_id,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cached_input_tokens": call.cached_input_tokens,
                "cost_input": from_pico(cost_input),
                "cost_output": from_pico(cost_output),
                "cost_total": from_pico(cost_total),
                "pricing_id": match.price.pricing_id,
                "matched_by": match.matched_by,
                "recorded_at": recorded_at,
            }
        )
        rolled.append(
            RolledCall(
                int(call.timestamp.timestamp()),
                call.provider,
                call.model,
                call.user,
                call.input_tokens,
                call.output_tokens,
                call.cached_input_tokens,
                cost_input,
                cost_output,
                cost_total,
                match.matched_by == "estimate",
            )
        )
    return rows, rolled


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
        fresh = [c for c in unique if c.request_id is None or c.request_id not in known]
        rows, rolled = _price_rows(index, fresh, datetime.now(UTC))
        if not rows:
            return BatchResult(0, len(calls))
        statement = _insert_for(conn)(UsageRecord).on_conflict_do_nothing(index_elements=["request_id"])
        returned = conn.execute(statement.returning(UsageRecord.id, UsageRecord.request_id), rows).all()
        if len(returned) != len(rows):  # another writer stored some of these ids meanwhile (PostgreSQL)
            stored = {r.request_id for r in returned}
            rolled = [
                r
                for r, row in zip(rolled, rows, strict=True)
                if row["request_id"] is None or row["request_id"] in stored
            ]
        add_to_rollups(conn, aggregate(rolled))
        ids = tuple(sorted(r.id for r in returned))
        return BatchResult(len(returned), len(calls) - len(returned), ids)

    return run_write(engine, work)


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
