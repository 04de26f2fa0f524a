"""Checking recorded costs: verify one call; re-price calls that were only estimated, or after a back-dated price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, or_, select, update

from core.pricing.formula import CostBreakdown, breakdown
from core.pricing.lookup import PriceIndex, current_index, price_book
from core.pricing.rates import STANDARD, Usage, normalize_provider
from core.recording.rollups import add_to_rollups, aggregate, rolled_from_row
from core.storage.engine import run_write
from core.storage.tables import PriceCorrection, PriceVersion, UsageRecord


@dataclass(frozen=True)
class Verification:
    """A logged call recomputed: stored cost, cost at its time, cost under today's prices."""

    id: int
    request_id: str | None
    timestamp: datetime
    provider: str
    model: str
    user: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    stored_cost_total: Decimal
    stored_matched_by: str
    stored_pricing_id: int | None
    at_its_time: CostBreakdown
    today: CostBreakdown
    project: str | None = None
    service_tier: str = STANDARD
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    stored_tier: int | None = None
    stored_price_service_tier: str | None = None

    @property
    def matches(self) -> bool:
        return self.stored_cost_total == self.at_its_time.cost_total


def verify_call(engine: Engine, log_id: int | None = None, request_id: str | None = None) -> Verification | None:
    """Recompute a logged call (by log id or request id); ``None`` if there is no such call."""
    from core.recording.calls import get_call

    record = get_call(engine, log_id=log_id, request_id=request_id)
    if record is None:
        return None
    index = current_index(engine)
    at_time = _reprice(index, record, record.timestamp)
    today = _reprice(index, record, datetime.now(UTC))
    return Verification(
        record.id,
        record.request_id,
        record.timestamp,
        record.provider,
        record.model,
        record.user_id,
        record.input_tokens,
        record.output_tokens,
        record.cached_input_tokens,
        record.cost_total,
        record.matched_by,
        record.pricing_id,
        at_time,
        today,
        record.project,
        record.service_tier or STANDARD,
        record.cache_write_tokens or 0,
        record.cache_write_1h_tokens or 0,
        record.reasoning_tokens or 0,
        record.web_search_calls or 0,
        record.tier,
        record.price_service_tier,
    )


def usage_of(record: UsageRecord) -> Usage:
    """A stored call's counts, as the formula takes them."""
    return Usage(
        record.input_tokens,
        record.output_tokens,
        record.cached_input_tokens,
        record.cache_write_tokens or 0,
        record.cache_write_1h_tokens or 0,
        record.reasoning_tokens or 0,
        record.web_search_calls or 0,
    )


def _reprice(index: PriceIndex, record: UsageRecord, at: datetime) -> CostBreakdown:
    """A stored call priced under the prices in force at ``at``, with the same tiers and tier rules."""
    tier = record.service_tier or STANDARD
    match = index.lookup(record.provider, record.model, at, tier)
    return breakdown(
        match,
        record.provider,
        record.model,
        record.input_tokens,
        record.output_tokens,
        record.cached_input_tokens,
        usage=usage_of(record),
        requested_service_tier=tier,
    )


@dataclass(frozen=True)
class RepriceResult:
    examined: int
    repriced: int
    cost_before: Decimal
    cost_after: Decimal


def reprice_estimated(
    engine: Engine, since: datetime | None = None, reason: str = "reprice --only-estimated"
) -> RepriceResult:
    """Re-price calls stored at the estimate once a real price exists, in one transaction.

    Each change is kept in ``usage_corrections``; the roll-ups move by the difference.
    Calls still without a real price are left as they are.
    """
    # the second term is ix_usage_unexact_time's predicate, so the partial index serves this
    conditions: list[ColumnElement[bool]] = [UsageRecord.matched_by == "estimate", UsageRecord.matched_by != "exact"]
    if since is not None:
        conditions.append(UsageRecord.timestamp >= since)
    return _reprice_where(engine, conditions, reason)


def _calls_of(provider: str, model: str, since: datetime, service_tier: str) -> list[ColumnElement[bool]]:
    """Stored calls a version of (provider, model, service tier) from ``since`` on may price: calls of that
    model name (any case), or priced by a version of that key; a standard price may price any tier."""
    provider, model_key = normalize_provider(provider), model.strip().lower()
    versions = select(PriceVersion.id).where(
        PriceVersion.provider == provider, func.lower(PriceVersion.model_name) == model_key
    )
    conditions = [
        UsageRecord.provider == provider,
        UsageRecord.timestamp >= since,
        or_(func.lower(UsageRecord.model) == model_key, UsageRecord.pricing_id.in_(versions)),
    ]
    if service_tier != "standard":
        conditions.append(UsageRecord.service_tier == service_tier)
    return conditions


def count_calls_since(
    engine: Engine, provider: str, model: str, since: datetime, service_tier: str = "standard"
) -> int:
    """How many stored calls a back-dated price from ``since`` would have priced."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(UsageRecord).where(*_calls_of(provider, model, since, service_tier))
        return int(conn.execute(query).scalar_one())


def reprice_calls(
    engine: Engine, provider: str, model: str, since: datetime, reason: str, service_tier: str = "standard"
) -> RepriceResult:
    """Re-price the stored calls of a model from ``since`` on under the prices now in force at their times
    (after a back-dated price), in one transaction; audited like ``reprice_estimated``."""
    return _reprice_where(engine, _calls_of(provider, model, since, service_tier), reason)


def _reprice_where(engine: Engine, conditions: list[ColumnElement[bool]], reason: str) -> RepriceResult:
    """Re-price the selected calls whose price at their time now differs from the stored one."""

    def work(conn: Connection) -> RepriceResult:
        index = price_book(engine).index(conn)
        query = select(UsageRecord).where(*conditions)
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:
            records = list(session.scalars(query.order_by(UsageRecord.id)))
        examined, before_total, after_total = len(records), Decimal(0), Decimal(0)
        removed, added, corrections = [], [], []
        now = datetime.now(UTC)
        for record in records:
            new = _reprice(index, record, record.timestamp)
            if new.matched_by == "estimate":
                continue
            if (new.cost_total, new.pricing_id, new.matched_by) == (
                record.cost_total,
                record.pricing_id,
                record.matched_by,
            ):
                continue  # already what the prices of its time give
            conn.execute(
                update(UsageRecord)
                .where(UsageRecord.id == record.id)
                .values(
                    cost_input=new.cost_input,
                    cost_output=new.cost_output,
                    cost_total=new.cost_total,
                    cost_web_search=new.cost_web_search,
                    cost_request=new.cost_request,
                    pricing_id=new.pricing_id,
                    matched_by=new.matched_by,
                    price_service_tier=new.service_tier,
                    tier=new.tier,
                )
            )
            corrections.append(
                dict(
                    usage_id=record.id,
                    old_cost_total=record.cost_total,
                    new_cost_total=new.cost_total,
                    old_pricing_id=record.pricing_id,
                    new_pricing_id=new.pricing_id,
                    old_matched_by=record.matched_by,
                    new_matched_by=new.matched_by,
                    corrected_at=now,
                    reason=reason,
                )
            )
            removed.append(rolled_from_row(record))
            added.append(rolled_from_row(_Updated(record, new)))
            before_total += record.cost_total
            after_total += new.cost_total
        if corrections:
            conn.execute(insert(PriceCorrection), corrections)
            deltas = aggregate(added)
            for key, values in aggregate(removed).items():
                row = deltas.setdefault(key, [0] * len(values))
                for i, value in enumerate(values):
                    row[i] -= value
            add_to_rollups(conn, deltas)
        return RepriceResult(examined, len(corrections), before_total, after_total)

    return run_write(engine, work)


class _Updated:
    """A stored call seen with its new cost (for the roll-up delta)."""

    def __init__(self, record: UsageRecord, new: CostBreakdown) -> None:
        self.timestamp, self.provider, self.model, self.user_id = (
            record.timestamp,
            record.provider,
            record.model,
            record.user_id,
        )
        self.input_tokens, self.output_tokens = record.input_tokens, record.output_tokens
        self.cached_input_tokens = record.cached_input_tokens
        self.project = record.project
        self.cache_write_tokens, self.cache_write_1h_tokens = record.cache_write_tokens, record.cache_write_1h_tokens
        self.reasoning_tokens, self.web_search_calls = record.reasoning_tokens, record.web_search_calls
        self.cost_input, self.cost_output, self.cost_total = new.cost_input, new.cost_output, new.cost_total
        self.matched_by = new.matched_by
        self.tags = record.tags
