"""Network ingestion: API keys (only a hash of each key) and the refusals kept for the dashboard.

Two new tables, nothing else touched; the downgrade drops them.

Revision ID: 0003_api_keys
Revises: 0002_whole_bill
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import UTCDateTime

revision = "0003_api_keys"
down_revision = "0002_whole_bill"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("name", name="api_keys_name_key"),
        sa.UniqueConstraint("prefix", name="api_keys_prefix_key"),
    )
    op.create_table(
        "rejected_ingestions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("key_name", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sample", sa.Text(), nullable=True),
    )
    op.create_index("ix_rejected_at", "rejected_ingestions", ["at", "id"])


def downgrade() -> None:
    op.drop_index("ix_rejected_at", table_name="rejected_ingestions")
    op.drop_table("rejected_ingestions")
    op.drop_table("api_keys")
