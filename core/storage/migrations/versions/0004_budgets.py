"""Budgets and alerts: budgets, the outbox of threshold crossings, every delivery attempt.

Three new tables, nothing else changes. ``budget_events`` is unique on (budget,
period start, threshold): that key is what makes each alert happen once.

Revision ID: 0004_budgets
Revises: 0003_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime

revision = "0004_budgets"
down_revision = "0003_api_keys"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False, server_default=sa.text("'USD'")),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False, server_default=sa.text("'UTC'")),
        sa.Column("scope_kind", sa.String(10), nullable=False, server_default=sa.text("'all'")),
        sa.Column("scope_value", sa.String(300), nullable=True),
        sa.Column("thresholds", sa.String(200), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.String(200), nullable=True),
        sa.Column("webhook_format", sa.String(10), nullable=False, server_default=sa.text("'standard'")),
        sa.Column("webhook_disabled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "budget_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False, unique=True),
        sa.Column("spend", Money(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("budget_id", "period_start", "threshold", name="uq_budget_event_key"),
    )
    op.create_index("ix_budget_events_due", "budget_events", ["status", "next_attempt_at"])
    op.create_table(
        "budget_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", BigId, sa.ForeignKey("budget_events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_budget_deliveries_event_id", "budget_deliveries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_budget_deliveries_event_id", table_name="budget_deliveries")
    op.drop_table("budget_deliveries")
    op.drop_index("ix_budget_events_due", table_name="budget_events")
    op.drop_table("budget_events")
    op.drop_table("budgets")
