"""Release 2, the whole bill: every usage field, service tiers, tiers and match rules, projects.

New columns get server defaults, so every release-1 row reads as what it was: a plain
standard call with no cache writes, reasoning or searches, and no project. Costs and
price versions are not touched. ``usage_rollups`` gains ``project`` in its primary key:
PostgreSQL swaps the key in place; SQLite (which cannot alter a key) gets a new table,
every row copied with project '', then swapped in, in the same transaction.

Revision ID: 0002_whole_bill
Revises: 0001_release1
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money

revision = "0002_whole_bill"
down_revision = "0001_release1"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
ROLLUP_KEY = ["grain", "bucket_start", "provider", "model", "user_id", "project"]
ROLLUP_R1_SUMS = ["calls", "input_tokens", "output_tokens", "cached_input_tokens"]
ROLLUP_R1_MONEY = ["cost_input", "cost_output", "cost_total", "estimated_calls", "estimated_cost"]
ROLLUP_NEW_SUMS = ["cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls"]


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False, server_default=ZERO) for name in names]


def _pricing_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("cache_write_token_cost", Money(), nullable=True),
        sa.Column("cache_write_1h_token_cost", Money(), nullable=True),
        sa.Column("reasoning_token_cost", Money(), nullable=True),
        sa.Column("cost_per_web_search", Money(), nullable=True),
        sa.Column("service_tier", sa.String(20), nullable=False, server_default=sa.text("'standard'")),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("match_rule", sa.Text(), nullable=True),
    ]


def _usage_columns() -> list[sa.Column[Any]]:
    return [
        *_counts("cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls"),
        sa.Column("service_tier", sa.String(20), nullable=False, server_default=sa.text("'standard'")),
        sa.Column("price_service_tier", sa.String(20), nullable=True),
        sa.Column("tier", sa.BigInteger(), nullable=True),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False, server_default=sa.text("'ok'")),
        sa.Column("cost_web_search", Money(), nullable=False, server_default=ZERO),
        sa.Column("cost_request", Money(), nullable=False, server_default=ZERO),
    ]


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (SQLite takes a constant default without a rebuild,
    # so api_usage_logs, which usage_corrections references, is never copied).
    for column in _pricing_columns():
        op.add_column("api_provider_pricing", column)
    for column in _usage_columns():
        op.add_column("api_usage_logs", column)
    op.create_index("ix_usage_project_time", "api_usage_logs", ["project", "timestamp", "id"])
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_rollups_sqlite()
    else:
        _rekey_rollups_in_place()


def _rekey_rollups_in_place() -> None:
    op.add_column("usage_rollups", sa.Column("project", sa.String(200), nullable=False, server_default=sa.text("''")))
    for column in _counts(*ROLLUP_NEW_SUMS):
        op.add_column("usage_rollups", column)
    op.drop_constraint("usage_rollups_pkey", "usage_rollups", type_="primary")
    op.create_primary_key("usage_rollups_pkey", "usage_rollups", ROLLUP_KEY)


def _rebuild_rollups_sqlite() -> None:
    op.create_table(
        "_usage_rollups_release2",
        sa.Column("grain", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True, server_default=sa.text("''")),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in ROLLUP_R1_SUMS],
        *_counts(*ROLLUP_NEW_SUMS),
        sa.Column("cost_input", Money(), nullable=False),
        sa.Column("cost_output", Money(), nullable=False),
        sa.Column("cost_total", Money(), nullable=False),
        sa.Column("estimated_calls", sa.BigInteger(), nullable=False),
        sa.Column("estimated_cost", Money(), nullable=False),
    )
    kept = ", ".join(["grain", "bucket_start", "provider", "model", "user_id", *ROLLUP_R1_SUMS, *ROLLUP_R1_MONEY])
    # the new sums and project take their defaults (0 and '')
    op.execute(f"INSERT INTO _usage_rollups_release2 ({kept}) SELECT {kept} FROM usage_rollups")  # noqa: S608
    op.drop_table("usage_rollups")
    op.rename_table("_usage_rollups_release2", "usage_rollups")


def downgrade() -> None:
    raise NotImplementedError("release 2 cannot be undone in place: restore the backup taken before upgrading")
