"""Baseline: the release-1 schema, as ``create_all`` made it at commit a133355.

A release-1 database has no ``alembic_version`` table; ``core.storage.migrate.upgrade_database``
stamps it with this revision and upgrades from here. Written by hand with the same
column types as the release-1 models, so running it on an empty database gives the
very same tables (tests/test_migrations.py compares them).

Revision ID: 0001_release1
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime

revision = "0001_release1"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_provider_pricing",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(300), nullable=False),
        sa.Column("input_token_cost", Money(), nullable=False),
        sa.Column("output_token_cost", Money(), nullable=False),
        sa.Column("cached_input_token_cost", Money(), nullable=True),
        sa.Column("cost_per_request", Money(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("effective_from", UTCDateTime(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_pricing_key_time", "api_provider_pricing", ["provider", "model_name", "effective_from"])

    op.create_table(
        "api_usage_logs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True, unique=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_input", Money(), nullable=False),
        sa.Column("cost_output", Money(), nullable=False),
        sa.Column("cost_total", Money(), nullable=False),
        sa.Column("pricing_id", BigId, sa.ForeignKey("api_provider_pricing.id"), nullable=True),
        sa.Column("matched_by", sa.String(10), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    for name, first in (
        ("ix_usage_time", None),
        ("ix_usage_provider_time", "provider"),
        ("ix_usage_model_time", "model"),
        ("ix_usage_user_time", "user_id"),
        ("ix_usage_matched_time", "matched_by"),
    ):
        op.create_index(name, "api_usage_logs", [c for c in (first, "timestamp", "id") if c])

    op.create_table(
        "usage_rollups",
        sa.Column("grain", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_input", Money(), nullable=False),
        sa.Column("cost_output", Money(), nullable=False),
        sa.Column("cost_total", Money(), nullable=False),
        sa.Column("estimated_calls", sa.BigInteger(), nullable=False),
        sa.Column("estimated_cost", Money(), nullable=False),
    )

    op.create_table(
        "spendboard_settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False, server_default=sa.text("''")),
    )

    op.create_table(
        "usage_corrections",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("usage_id", BigId, sa.ForeignKey("api_usage_logs.id"), nullable=False),
        sa.Column("old_cost_total", Money(), nullable=False),
        sa.Column("new_cost_total", Money(), nullable=False),
        sa.Column("old_pricing_id", sa.BigInteger(), nullable=True),
        sa.Column("new_pricing_id", sa.BigInteger(), nullable=True),
        sa.Column("old_matched_by", sa.String(10), nullable=False),
        sa.Column("new_matched_by", sa.String(10), nullable=False),
        sa.Column("corrected_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("usage_corrections", "spendboard_settings", "usage_rollups", "api_usage_logs"):
        op.drop_table(table)
    op.drop_table("api_provider_pricing")
