"""API keys get a scope (``ingest``, ``read``, ``check`` or ``all``); the log gets an index of its error calls.

Every key made before this release was made for the ingestion routes, so the new column's
server default ``ingest`` gives each existing row that scope in place: they keep working as
they did, and nothing else. ``/metrics`` labels spend by call status, which the roll-ups do
not key: the partial index ``ix_usage_errors`` holds only calls whose status is not ``ok``
(rare) with the columns a scrape sums, so a scrape reads those from the index alone and the rest
from the roll-ups, and an ``ok`` insert never touches it.

Revision ID: 0014_key_scopes
Revises: 0013_anomalies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_key_scopes"
down_revision = "0013_anomalies"
branch_labels = None
depends_on = None

NOT_OK = sa.text("status <> 'ok'")
# the key /metrics groups by, then every column it sums: a scrape reads the error calls from the index alone
ERROR_SUMS = (
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


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(10), nullable=False, server_default=sa.text("'ingest'")))
    op.create_index(
        "ix_usage_errors",
        "api_usage_logs",
        list(ERROR_SUMS),
        sqlite_where=NOT_OK,
        postgresql_where=NOT_OK,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_errors", table_name="api_usage_logs")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scope")
