"""Tags and customers: each call's tags, the index of them, and the customers calls are billed to.

``api_usage_logs.tags`` is a new nullable column (a JSON list; every existing call has no
tags, so nothing is rewritten: on SQLite and PostgreSQL adding a nullable column is a change
to the catalog only). ``call_tags`` (one row per call and tag, indexed by tag and time) and
``customers`` are new and start empty. Spend per tag lives in ``usage_entity_rollups`` with
dimension ``tag``: no existing call has a tag, so there is nothing to roll up.

Revision ID: 0009_tags_and_customers
Revises: 0008_time_index_covers_edges
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import UTCDateTime

revision = "0009_tags_and_customers"
down_revision = "0008_time_index_covers_edges"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_usage_logs") as batch:
        batch.add_column(sa.Column("tags", sa.Text(), nullable=True))
    op.create_table(
        "call_tags",
        sa.Column(
            "usage_id",
            BigId,
            sa.ForeignKey("api_usage_logs.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("tag", sa.String(100), primary_key=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_call_tags_tag_time", "call_tags", ["tag", "timestamp", "usage_id"])
    op.create_table(
        "customers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("match_kind", sa.String(10), nullable=False),
        sa.Column("match_value", sa.String(200), nullable=False),
        sa.Column("markup", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customers")
    op.drop_index("ix_call_tags_tag_time", table_name="call_tags")
    op.drop_table("call_tags")
    with op.batch_alter_table("api_usage_logs") as batch:
        batch.drop_column("tags")
