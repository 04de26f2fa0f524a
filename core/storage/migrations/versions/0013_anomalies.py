"""Anomalies: the anomalies found (once each), the alert webhooks, and the outbox learning anomaly rows.

``anomalies`` is unique on (scope, key, hour); ``alerts`` holds the webhooks. The budgets'
outbox ``budget_events`` gets ``alert_id`` and ``anomaly_id`` (unique together: one event per
webhook and anomaly) and its ``budget_id`` may be NULL for an anomaly's row; every existing row
is kept as it was. SQLite rebuilds that small table (batch mode) to relax the NOT NULL; dropping
the old copy would cascade to ``budget_deliveries`` (foreign keys are on, and cannot be turned off
inside the migration's transaction), so the attempts are kept aside and put back.

Revision ID: 0013_anomalies
Revises: 0010_reconciliation
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime

revision = "0013_anomalies"
down_revision = "0010_reconciliation"
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
    with _attempts_kept():
        _add_anomaly_links()


def _add_anomaly_links() -> None:
    with op.batch_alter_table("budget_events") as batch:
        batch.alter_column("budget_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("alert_id", BigId, nullable=True))
        batch.add_column(sa.Column("anomaly_id", BigId, nullable=True))
        batch.create_foreign_key("fk_budget_events_alert_id_alerts", "alerts", ["alert_id"], ["id"], ondelete="CASCADE")
        batch.create_foreign_key(
            "fk_budget_events_anomaly_id_anomalies", "anomalies", ["anomaly_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint("uq_alert_event", ["alert_id", "anomaly_id"])


@contextmanager
def _attempts_kept() -> Iterator[None]:
    """SQLite: keep ``budget_deliveries`` aside while ``budget_events`` is rebuilt (its DROP cascades)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE keep_budget_deliveries AS SELECT * FROM budget_deliveries")
    yield
    if sqlite:
        op.execute("DELETE FROM budget_deliveries")
        op.execute("INSERT INTO budget_deliveries SELECT * FROM keep_budget_deliveries")
        op.execute("DROP TABLE keep_budget_deliveries")


def downgrade() -> None:
    op.execute("DELETE FROM budget_events WHERE budget_id IS NULL")
    with _attempts_kept():
        _drop_anomaly_links()
    op.drop_table("alerts")
    op.drop_index("ix_anomalies_hour", table_name="anomalies")
    op.drop_table("anomalies")


def _drop_anomaly_links() -> None:
    with op.batch_alter_table("budget_events") as batch:
        batch.drop_constraint("uq_alert_event", type_="unique")
        batch.drop_constraint("fk_budget_events_anomaly_id_anomalies", type_="foreignkey")
        batch.drop_constraint("fk_budget_events_alert_id_alerts", type_="foreignkey")
        batch.drop_column("anomaly_id")
        batch.drop_column("alert_id")
        batch.alter_column("budget_id", existing_type=BigId, nullable=False)
