"""Tags by provider and model: ``usage_tag_rollups``, per tag, UTC day (and 7-day block), provider and model.

With one tag picked, the Overview's chart by provider and its provider and model tables read every
call of the tag in the period (through ``call_tags``): 3,000 calls a month at 1M calls and 1,000
tags, 30 at 10k. This table keeps their sums per tag, bucket, provider and model (key in that order
with the tag first, so one tag's buckets are prefix ranges; WITHOUT ROWID on SQLite, as the other
roll-ups), and reports add the raw calls near a period's ends as the entity roll-ups do. It is
derived data, filled here from ``call_tags`` joined to the logs by the database (exact: the sums
run over the stored values), in the upgrade's transaction.

Revision ID: 0017_tag_rollups
Revises: 0016_counter_index_without_spend
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money

revision = "0017_tag_rollups"
down_revision = "0016_counter_index_without_spend"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
COUNTS = ["calls", "input_tokens", "output_tokens", "cached_input_tokens"]
NEW_COUNTS = ["cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls"]
SUMS = [*COUNTS, *NEW_COUNTS, "cost_input", "cost_output", "cost_total", "estimated_calls", "estimated_cost"]
ENTITY_GRAINS = (86400, 7 * 86400)


def upgrade() -> None:
    op.create_table(
        "usage_tag_rollups",
        sa.Column("tag", sa.String(100), primary_key=True),
        sa.Column("grain", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS],
        *[sa.Column(name, sa.BigInteger(), nullable=False, server_default=ZERO) for name in NEW_COUNTS],
        sa.Column("cost_input", Money(), nullable=False),
        sa.Column("cost_output", Money(), nullable=False),
        sa.Column("cost_total", Money(), nullable=False),
        sa.Column("estimated_calls", sa.BigInteger(), nullable=False),
        sa.Column("estimated_cost", Money(), nullable=False),
        sqlite_with_rowid=False,
    )
    _fill()


def _fill() -> None:
    """Every tagged call's sums per tag, day, provider and model, fanned out to days and 7-day blocks."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        epoch = "CAST(strftime('%s', l.timestamp) AS INTEGER)"
    else:
        epoch = "CAST(floor(extract(epoch FROM l.timestamp)) AS BIGINT)"
    sums = (
        "count(*) AS calls, sum(l.input_tokens) AS input_tokens, sum(l.output_tokens) AS output_tokens, "
        "sum(l.cached_input_tokens) AS cached_input_tokens, sum(l.cache_write_tokens) AS cache_write_tokens, "
        "sum(l.cache_write_1h_tokens) AS cache_write_1h_tokens, sum(l.reasoning_tokens) AS reasoning_tokens, "
        "sum(l.web_search_calls) AS web_search_calls, sum(l.cost_input) AS cost_input, "
        "sum(l.cost_output) AS cost_output, sum(l.cost_total) AS cost_total, "
        "sum(CASE WHEN l.matched_by = 'estimate' THEN 1 ELSE 0 END) AS estimated_calls, "
        "sum(CASE WHEN l.matched_by = 'estimate' THEN l.cost_total ELSE 0 END) AS estimated_cost"
    )
    outer = ", ".join(f"sum(b.{name})" for name in SUMS)
    names = ", ".join(SUMS)
    grains = " UNION ALL ".join(f"SELECT {g} AS grain" for g in ENTITY_GRAINS)
    op.execute(
        f"INSERT INTO usage_tag_rollups (tag, grain, bucket_start, provider, model, {names}) "  # noqa: S608 (constants)
        f"SELECT b.tag, g.grain, b.day - b.day % g.grain, b.provider, b.model, {outer} "
        f"FROM (SELECT {epoch} - {epoch} % 86400 AS day, t.tag AS tag, l.provider AS provider, l.model AS model, "
        f"{sums} FROM call_tags t JOIN api_usage_logs l ON l.id = t.usage_id GROUP BY 1, 2, 3, 4) b "
        f"CROSS JOIN ({grains}) g GROUP BY 1, 2, 3, 4, 5"
    )
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE usage_tag_rollups")  # the reports' plans need its size at once


def downgrade() -> None:
    op.drop_table("usage_tag_rollups")
