"""Reconciliation: the provider's own bill per UTC day (cost lines, token counts) and the days fetched.

Three new tables, nothing else changes: ``reconcile_billed_costs`` (provider, day, model, token
type, exact amount), ``reconcile_billed_usage`` (provider, day, model, token counts) and
``reconcile_days`` (which days' bill and usage are known, so a day reported empty is billed 0).

Revision ID: 0010_reconciliation
Revises: 0009_tags_and_customers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime

revision = "0010_reconciliation"
down_revision = "0009_tags_and_customers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_billed_costs",
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("token_type", sa.String(100), primary_key=True),
        sa.Column("amount", Money(), nullable=False),
    )
    op.create_table(
        "reconcile_billed_usage",
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "reconcile_days",
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("cost_known", sa.Boolean(), nullable=False),
        sa.Column("usage_known", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconcile_days")
    op.drop_table("reconcile_billed_usage")
    op.drop_table("reconcile_billed_costs")
