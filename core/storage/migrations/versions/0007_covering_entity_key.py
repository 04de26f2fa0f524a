"""PostgreSQL: the users' and projects' roll-up key carries the two sums a ranking reads.

"Top users" sums ``calls`` and ``cost_total`` of about 100,000 rows (every active user's
day and 7-day buckets of a month). With them in the primary key's index (``INCLUDE``),
PostgreSQL answers from the index alone instead of fetching each row from the table:
the ranking at 1M calls / 10,000 users went from 95 to 54 ms (``EXPLAIN ANALYZE``,
bench_card database). Ingestion measured the same with and without it (12.8-13.1k calls/s,
100,000 calls in random order). SQLite needs nothing: the table is WITHOUT ROWID, its rows
live in the key's b-tree.

Revision ID: 0007_covering_entity_key
Revises: 0006_lean_log_indexes
"""

from __future__ import annotations

from alembic import op

revision = "0007_covering_entity_key"
down_revision = "0006_lean_log_indexes"
branch_labels = None
depends_on = None

KEY = "dimension, grain, bucket_start, entity"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_entity_rollups DROP CONSTRAINT usage_entity_rollups_pkey")
    op.execute(
        "ALTER TABLE usage_entity_rollups ADD CONSTRAINT usage_entity_rollups_pkey "
        f"PRIMARY KEY ({KEY}) INCLUDE (calls, cost_total)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_entity_rollups DROP CONSTRAINT usage_entity_rollups_pkey")
    op.execute(f"ALTER TABLE usage_entity_rollups ADD CONSTRAINT usage_entity_rollups_pkey PRIMARY KEY ({KEY})")
