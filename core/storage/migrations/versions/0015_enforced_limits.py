"""Enforced budgets: a budget's ``enforce`` flag, the subject of ``each:`` budgets' events, counters and holds.

``budget_events`` gains ``subject`` ('' for budgets of one scope, so every release-2 event
keeps its key) and its unique key takes it in. ``limit_counters`` (the row concurrent
reserving checks lock) and ``limit_holds`` are new and start empty.

Revision ID: 0015_enforced_limits
Revises: 0014_key_scopes
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

from core.storage.columns import Money, UTCDateTime

revision = "0015_enforced_limits"
down_revision = "0014_key_scopes"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _recreate_events(change: Callable[[BatchOperations], None]) -> None:
    """ALTER budget_events; SQLite rebuilds the table, and dropping the old one would cascade to its deliveries.

    With foreign keys on (every connection here), SQLite's DROP TABLE deletes the rows first and
    ``ON DELETE CASCADE`` empties ``budget_deliveries``; the pragma cannot change inside the
    migration's transaction, so the deliveries are kept aside and put back, ids and all.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMPORARY TABLE keep_budget_deliveries AS SELECT * FROM budget_deliveries")
    with op.batch_alter_table("budget_events") as batch:
        change(batch)
    if sqlite:
        op.execute("INSERT INTO budget_deliveries SELECT * FROM keep_budget_deliveries")
        op.execute("DROP TABLE keep_budget_deliveries")


def upgrade() -> None:
    # a plain ADD COLUMN on both databases (no table rebuild: budgets is referenced with ON DELETE CASCADE)
    op.add_column("budgets", sa.Column("enforce", sa.Boolean(), nullable=False, server_default=sa.text("false")))

    def events(batch: BatchOperations) -> None:
        batch.add_column(sa.Column("subject", sa.String(300), nullable=False, server_default=sa.text("''")))
        batch.drop_constraint("uq_budget_event_key", type_="unique")
        batch.create_unique_constraint("uq_budget_event_key", ["budget_id", "period_start", "threshold", "subject"])

    _recreate_events(events)
    op.create_table(
        "limit_counters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("spend", Money(), nullable=False),
        sa.Column("held", Money(), nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("corrections_seen", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("denied", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("budget_id", "subject", "period_start", name="uq_limit_counter_key"),
    )
    op.create_index("ix_limit_counters_rank", "limit_counters", ["budget_id", "period_start", "spend"])
    op.create_table(
        "limit_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_limit_holds_request_id", "limit_holds", ["request_id"])
    op.create_index("ix_limit_holds_key", "limit_holds", ["budget_id", "subject", "period_start", "expires_at"])


def downgrade() -> None:
    op.drop_table("limit_holds")
    op.drop_table("limit_counters")
    op.execute("DELETE FROM budget_events WHERE subject <> ''")  # each: budgets' events have no place below

    def events(batch: BatchOperations) -> None:
        batch.drop_constraint("uq_budget_event_key", type_="unique")
        batch.create_unique_constraint("uq_budget_event_key", ["budget_id", "period_start", "threshold"])
        batch.drop_column("subject")

    _recreate_events(events)
    op.execute("ALTER TABLE budgets DROP COLUMN enforce")  # in place on both (SQLite 3.35+): no rebuild, no cascade
