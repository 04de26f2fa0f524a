"""Anomalies: the anomalies found (once each), the alert webhooks, and the outbox learning anomaly rows.

``anomalies`` is unique on (scope, key, hour); ``alerts`` holds the webhooks. The budgets'
outbox ``budget_events`` gets ``alert_id`` and ``anomaly_id`` (unique together: one event per
webhook and anomaly) and its ``budget_id`` may be NULL for an anomaly's row; every existing row
is kept as it was. SQLite rebuilds that small table (batch mode) to relax the NOT NULL.

Revision ID: 0013_anomalies
Revises: 0008_time_index_covers_edges
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime

revision = "0013_anomalies"
down_revision = "0008_time_index_covers_edges"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "anomalies",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("spend", Money(), nullable=False),
        sa.Column("baseline", Money(), nullable=False),
        sa.Column("ratio", sa.String(40), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("found_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("scope", "key", "hour", name="uq_anomaly_key"),
    )
    op.create_index("ix_anomalies_hour", "anomalies", ["hour"])
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("webhook_secret", sa.String(200), nullable=True),
        sa.Column("webhook_format", sa.String(10), nullable=False, server_default=sa.text("'standard'")),
        sa.Column("webhook_disabled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("budget_events") as batch:
        batch.alter_column("budget_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("alert_id", BigId, nullable=True))
        batch.add_column(sa.Column("anomaly_id", BigId, nullable=True))
        batch.create_foreign_key("fk_budget_events_alert_id_alerts", "alerts", ["alert_id"], ["id"], ondelete="CASCADE")
        batch.create_foreign_key(
            "fk_budget_events_anomaly_id_anomalies", "anomalies", ["anomaly_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint("uq_alert_event", ["alert_id", "anomaly_id"])


def downgrade() -> None:
    op.execute("DELETE FROM budget_events WHERE budget_id IS NULL")
    with op.batch_alter_table("budget_events") as batch:
        batch.drop_constraint("uq_alert_event", type_="unique")
        batch.drop_constraint("fk_budget_events_anomaly_id_anomalies", type_="foreignkey")
        batch.drop_constraint("fk_budget_events_alert_id_alerts", type_="foreignkey")
        batch.drop_column("anomaly_id")
        batch.drop_column("alert_id")
        batch.alter_column("budget_id", existing_type=BigId, nullable=False)
    op.drop_table("alerts")
    op.drop_index("ix_anomalies_hour", table_name="anomalies")
    op.drop_table("anomalies")
