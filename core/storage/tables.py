"""Tables (SQLAlchemy 2.0 typed mappings).

``api_provider_pricing`` holds price *versions*: a change is a new row, never an
update. ``api_usage_logs`` holds one row per call with its exact cost and the
version that priced it. ``usage_rollups`` keeps per-bucket totals, maintained in
the same transaction as each insert, so reports never scan the logs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.storage.columns import Money, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UNEXACT = text("matched_by <> 'exact'")  # the calls ix_usage_unexact_time holds
NOT_OK = text("status <> 'ok'")  # the calls ix_usage_errors holds
ERROR_SUMS = (  # ix_usage_errors: the key /metrics groups by, then every column it sums
    "status",
    "provider",
    "model",
    "cost_total",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


class Base(DeclarativeBase):
    type_annotation_map = {Decimal: Money(), datetime: UTCDateTime(), int: BigInteger()}


class PriceVersion(Base):
    """One version of a price; the version in force at t has the latest ``effective_from`` <= t."""

    __tablename__ = "api_provider_pricing"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(300))
    input_token_cost: Mapped[Decimal]
    output_token_cost: Mapped[Decimal]
    cached_input_token_cost: Mapped[Decimal | None]
    cost_per_request: Mapped[Decimal | None]
    # release 2: the whole bill (empty rates fall back as DESIGN.md "A price version" says)
    cache_write_token_cost: Mapped[Decimal | None]
    cache_write_1h_token_cost: Mapped[Decimal | None]
    reasoning_token_cost: Mapped[Decimal | None]
    cost_per_web_search: Mapped[Decimal | None]
    service_tier: Mapped[str] = mapped_column(String(20), server_default=text("'standard'"))
    tiers: Mapped[str | None] = mapped_column(Text)  # JSON list of {"above_input_tokens": N, rate: "decimal"}
    match_rule: Mapped[str | None] = mapped_column(Text)  # JSON match clause for the `alias` step
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    effective_from: Mapped[datetime]
    retired: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(20))  # catalog | package | env | form | import
    changed_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_pricing_key_time", "provider", "model_name", "effective_from"),)


class UsageRecord(Base):
    """One recorded call, priced when it was recorded."""

    __tablename__ = "api_usage_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime]
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    cached_input_tokens: Mapped[int] = mapped_column(default=0)
    cost_input: Mapped[Decimal]
    cost_output: Mapped[Decimal]
    cost_total: Mapped[Decimal]
    pricing_id: Mapped[int | None] = mapped_column(ForeignKey("api_provider_pricing.id"))
    matched_by: Mapped[str] = mapped_column(String(10))  # exact | short | alias | default | env | estimate
    recorded_at: Mapped[datetime]
    # release 2 (server defaults: rows of release 1 read as a plain standard call)
    cache_write_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cache_write_1h_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    reasoning_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    web_search_calls: Mapped[int] = mapped_column(server_default=text("0"))
    service_tier: Mapped[str] = mapped_column(String(20), server_default=text("'standard'"))  # as requested
    price_service_tier: Mapped[str | None] = mapped_column(String(20))  # the tier whose rates were used
    tier: Mapped[int | None]  # above_input_tokens of the long-context tier used, or NULL
    project: Mapped[str | None] = mapped_column(String(200))
    latency_ms: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10), server_default=text("'ok'"))
    cost_web_search: Mapped[Decimal] = mapped_column(server_default=text("0"))
    cost_request: Mapped[Decimal] = mapped_column(server_default=text("0"))
    tags: Mapped[str | None] = mapped_column(Text)  # release 3: a JSON list of the call's tags, NULL when none

    __table_args__ = (
        # Only what a query uses: each index costs every insert (migration 0006 says which
        # query needs each, and why provider has none).
        # user, project and cost too: rankings read a period's raw edges from the index alone (0008)
        Index("ix_usage_time", "timestamp", "id", "user_id", "project", "cost_total"),
        Index("ix_usage_model_time", "model", "timestamp", "id"),
        Index("ix_usage_user_time", "user_id", "timestamp", "id"),
        Index("ix_usage_project_time", "project", "timestamp", "id"),
        # calls not priced by an exact match (estimates and the other rare steps), for the
        # "Matched by" filter; a query on one of these steps repeats the predicate to use it
        Index("ix_usage_unexact_time", "matched_by", "timestamp", "id", sqlite_where=UNEXACT, postgresql_where=UNEXACT),
        # calls whose status is not ok (rare), with what /metrics sums of them: read from the index alone (0014)
        Index("ix_usage_errors", *ERROR_SUMS, sqlite_where=NOT_OK, postgresql_where=NOT_OK),
    )


class _RollupSums:
    """The sums every roll-up row keeps (money exact)."""

    calls: Mapped[int]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    cached_input_tokens: Mapped[int]
    cache_write_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cache_write_1h_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    reasoning_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    web_search_calls: Mapped[int] = mapped_column(server_default=text("0"))
    cost_input: Mapped[Decimal]
    cost_output: Mapped[Decimal]
    cost_total: Mapped[Decimal]
    estimated_calls: Mapped[int]
    estimated_cost: Mapped[Decimal]


class UsageRollup(_RollupSums, Base):
    """The time series: totals per (grain, bucket, provider, model).

    Grains are 900 s, 3600 s, 21600 s and 86400 s (UTC). Every local day boundary in
    every time zone falls on a quarter hour, so any period is an exact sum of
    buckets; the coarse grains keep long periods to few rows. Users and projects are
    not in this key (their cross-product with time and models is what grows with
    thousands of users): they have :class:`EntityRollup`.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = {"sqlite_with_rowid": False}  # SQLite: rows live in the key's b-tree (one lookup, not two)

    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(primary_key=True)  # epoch seconds, UTC
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)


class EntityRollup(_RollupSums, Base):
    """Totals per (dimension, grain, bucket, entity): dimension ``user``, ``project`` or ``tag``, entity '' when none.

    One row per user (or project, or tag) and UTC day (and 7-day block; and six hours for tags) with any
    call. Periods whose ends are not UTC midnights add (or subtract) the raw logs between the end and the
    nearest midnight (six hours for tags), read through ``ix_usage_time``, so every local period stays exact.
    """

    __tablename__ = "usage_entity_rollups"
    __table_args__ = (
        # PostgreSQL: a ranking of users reads its two sums from the key's index alone
        # (SQLite: rows live in the key's b-tree anyway)
        PrimaryKeyConstraint(
            "dimension", "grain", "bucket_start", "entity", postgresql_include=["calls", "cost_total"]
        ),
        {"sqlite_with_rowid": False},
    )

    dimension: Mapped[str] = mapped_column(String(10), primary_key=True)
    grain: Mapped[int] = mapped_column(Integer, primary_key=True)  # 86400 or 604800
    bucket_start: Mapped[int] = mapped_column(primary_key=True)  # epoch seconds, UTC
    entity: Mapped[str] = mapped_column(String(200), primary_key=True)


class Setting(Base):
    """Small key/value state: the admin password hash, what env values were applied."""

    __tablename__ = "spendboard_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, server_default=text("''"))


class PriceCorrection(Base):
    """A logged call whose cost was changed by ``reprice``: what it was and what it became."""

    __tablename__ = "usage_corrections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    usage_id: Mapped[int] = mapped_column(ForeignKey("api_usage_logs.id"))
    old_cost_total: Mapped[Decimal]
    new_cost_total: Mapped[Decimal]
    old_pricing_id: Mapped[int | None]
    new_pricing_id: Mapped[int | None]
    old_matched_by: Mapped[str] = mapped_column(String(10))
    new_matched_by: Mapped[str] = mapped_column(String(10))
    corrected_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
