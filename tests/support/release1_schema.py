"""The release-1 schema, frozen: core/models.py exactly as at commit a133355 (tables only).

Real release-1 databases were made by ``create_all`` of these models; tests build one
from here (never from today's models) and upgrade it. Do not edit: it is history.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.storage.columns import Money, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


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
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    effective_from: Mapped[datetime]
    retired: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(20))  # catalog | env | form | import
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
    matched_by: Mapped[str] = mapped_column(String(10))  # exact | short | default | env | estimate
    recorded_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_usage_time", "timestamp", "id"),
        Index("ix_usage_provider_time", "provider", "timestamp", "id"),
        Index("ix_usage_model_time", "model", "timestamp", "id"),
        Index("ix_usage_user_time", "user_id", "timestamp", "id"),
        Index("ix_usage_matched_time", "matched_by", "timestamp", "id"),
    )


class UsageRollup(Base):
    """Totals per (grain, bucket, provider, model, user).

    Grains are 900 s, 3600 s and 86400 s (UTC). Every local day boundary in
    every time zone falls on a quarter hour, so any period is an exact sum of
    buckets; the coarse grains keep long periods to few rows.
    """

    __tablename__ = "usage_rollups"

    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(primary_key=True)  # epoch seconds, UTC
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)  # '' when none
    calls: Mapped[int]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    cached_input_tokens: Mapped[int]
    cost_input: Mapped[Decimal]
    cost_output: Mapped[Decimal]
    cost_total: Mapped[Decimal]
    estimated_calls: Mapped[int]
    estimated_cost: Mapped[Decimal]


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
