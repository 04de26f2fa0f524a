"""Roll-ups sized by what reports read: the series per (provider, model), users and projects apart.

``usage_rollups`` loses ``user_id`` and ``project`` from its key (grain, bucket_start,
provider, model) and gains each provider's total over its models (model '').
``usage_entity_rollups`` (dimension 'user' | 'project', grain one UTC day | 7 days,
bucket_start, entity) is new. Roll-ups are derived data: both tables are rebuilt from
the logs in the same transaction, so every upgraded database is consistent whatever it
held before. On SQLite both are WITHOUT ROWID tables: a range of buckets is read from
the key's own b-tree, without a second lookup per row.

Revision ID: 0005_rollups_by_entity
Revises: 0004_budgets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money

revision = "0005_rollups_by_entity"
down_revision = "0004_budgets"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
COUNTS = ["calls", "input_tokens", "output_tokens", "cached_input_tokens"]
NEW_COUNTS = ["cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls"]
SUMS = [*COUNTS, *NEW_COUNTS, "cost_input", "cost_output", "cost_total", "estimated_calls", "estimated_cost"]
GRAINS = (900, 3600, 21600, 86400)
ENTITY_GRAINS = (86400, 7 * 86400)


def _sum_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS],
        *[sa.Column(name, sa.BigInteger(), nullable=False, server_default=ZERO) for name in NEW_COUNTS],
        sa.Column("cost_input", Money(), nullable=False),
        sa.Column("cost_output", Money(), nullable=False),
        sa.Column("cost_total", Money(), nullable=False),
        sa.Column("estimated_calls", sa.BigInteger(), nullable=False),
        sa.Column("estimated_cost", Money(), nullable=False),
    ]


def upgrade() -> None:
    op.drop_table("usage_rollups")
    op.create_table(
        "usage_rollups",
        sa.Column("grain", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        *_sum_columns(),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_entity_rollups",
        sa.Column("dimension", sa.String(10), primary_key=True),
        sa.Column("grain", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("entity", sa.String(200), primary_key=True),
        *_sum_columns(),
        sqlite_with_rowid=False,
    )
    _rebuild()


def _rebuild() -> None:
    """Both roll-ups summed from the logs by the database (exact: the sums run over the stored values)."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        epoch = "CAST(strftime('%s', timestamp) AS INTEGER)"
    else:
        epoch = "CAST(floor(extract(epoch FROM timestamp)) AS BIGINT)"
    sums = (
        "count(*) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
        "sum(cache_write_1h_tokens) AS cache_write_1h_tokens, sum(reasoning_tokens) AS reasoning_tokens, "
        "sum(web_search_calls) AS web_search_calls, sum(cost_input) AS cost_input, "
        "sum(cost_output) AS cost_output, sum(cost_total) AS cost_total, "
        "sum(CASE WHEN matched_by = 'estimate' THEN 1 ELSE 0 END) AS estimated_calls, "
        "sum(CASE WHEN matched_by = 'estimate' THEN cost_total ELSE 0 END) AS estimated_cost"
    )
    outer = ", ".join(f"sum(b.{name})" for name in SUMS)
    names = ", ".join(SUMS)
    grains = " UNION ALL ".join(f"SELECT {g} AS grain" for g in GRAINS)
    op.execute(
        f"INSERT INTO usage_rollups (grain, bucket_start, provider, model, {names}) "  # noqa: S608 (constants)
        f"SELECT g.grain, b.quarter - b.quarter % g.grain, b.provider, b.model, {outer} "
        f"FROM (SELECT {epoch} - {epoch} % 900 AS quarter, provider, model, {sums} "
        f"FROM api_usage_logs GROUP BY 1, 2, 3 "
        # each provider's total over its models, as model ''
        f"UNION ALL SELECT {epoch} - {epoch} % 900 AS quarter, provider, '' AS model, {sums} "
        f"FROM api_usage_logs GROUP BY 1, 2) b CROSS JOIN ({grains}) g GROUP BY 1, 2, 3, 4"
    )
    entity_grains = " UNION ALL ".join(f"SELECT {g} AS grain" for g in ENTITY_GRAINS)
    for dimension, column in (("user", "user_id"), ("project", "project")):
        op.execute(
            f"INSERT INTO usage_entity_rollups (dimension, grain, bucket_start, entity, {names}) "  # noqa: S608
            f"SELECT '{dimension}', g.grain, b.day - b.day % g.grain, b.entity, {outer} "
            f"FROM (SELECT {epoch} - {epoch} % 86400 AS day, coalesce({column}, '') AS entity, {sums} "
            f"FROM api_usage_logs GROUP BY 1, 2) b CROSS JOIN ({entity_grains}) g GROUP BY 1, 2, 3, 4"
        )


def downgrade() -> None:
    raise NotImplementedError("the roll-ups cannot be re-keyed back in place: restore the backup taken before")
