"""The log keeps only the indexes a query uses: each one costs every insert.

Measured on a copy of the 1M-call / 10,000-user benchmark database (raw ``executemany``
of 100,000 stored rows in random time order, ``bench/bench_log_indexes.py``): every
``(column, timestamp, id)`` index takes a random leaf page per row. Dropped:

- ``ix_usage_provider_time``: no query needs it. Reports by provider read the roll-ups;
  mixed filters go through the user, model or project index; the Usage logs page filtered
  by provider walks ``ix_usage_time`` newest first (a provider is a large share of calls).
- ``ix_usage_matched_time``, replaced by ``ix_usage_unexact_time``, the same columns for
  calls not priced by an exact match only (partial): "estimated calls" and the other
  rare steps stay one index range away, and the common case (exact) costs no index entry.

Revision ID: 0006_lean_log_indexes
Revises: 0005_rollups_by_entity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_lean_log_indexes"
down_revision = "0005_rollups_by_entity"
branch_labels = None
depends_on = None

UNEXACT = sa.text("matched_by <> 'exact'")


def upgrade() -> None:
    op.drop_index("ix_usage_provider_time", table_name="api_usage_logs")
    op.drop_index("ix_usage_matched_time", table_name="api_usage_logs")
    op.create_index(
        "ix_usage_unexact_time",
        "api_usage_logs",
        ["matched_by", "timestamp", "id"],
        sqlite_where=UNEXACT,
        postgresql_where=UNEXACT,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_unexact_time", table_name="api_usage_logs")
    op.create_index("ix_usage_matched_time", "api_usage_logs", ["matched_by", "timestamp", "id"])
    op.create_index("ix_usage_provider_time", "api_usage_logs", ["provider", "timestamp", "id"])
