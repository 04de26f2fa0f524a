"""Migration 0009_tags_and_customers on a database of the previous head (0008), with calls in it:
every row and cost kept, the new column empty, the new tables usable, the schema that of the models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from core.customers import service
from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import make_call, record_batch
from core.recording.rollups import check_rollups
from core.reporting import aggregates as reports
from core.storage.engine import make_engine
from core.storage.migrate import head_revision, upgrade_database
from core.storage.migrations import alembic_config, all_tables

PREVIOUS = "0008_time_index_covers_edges"
PG_URL = os.environ.get("TEST_DATABASE_URL")
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def previous(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database made by the migrations up to 0008, with three calls and their roll-ups."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'r2.db'}"
        admin = None
    else:
        assert PG_URL is not None
        schema = f"sb_mig9_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0004_budgets")
        conn.execute(
            text(
                "INSERT INTO api_usage_logs (timestamp, provider, model, user_id, request_id, input_tokens, "
                "output_tokens, cached_input_tokens, cost_input, cost_output, cost_total, matched_by, recorded_at, "
                "project) VALUES (:t, 'openai', 'gpt-4o', :u, :r, 1000, 100, 0, :ci, :co, :ct, 'exact', :t, :p)"
            ),
            [
                {"t": datetime(2026, 10, 5, 9, tzinfo=UTC), "u": "alice", "r": f"old-{i}", "p": "acme"}
                | (
                    {"ci": 2_500_000_000, "co": 1_000_000_001, "ct": 3_500_000_001}
                    if engine.dialect.name == "sqlite"
                    else {"ci": Decimal("0.0025"), "co": Decimal("0.001000000001"), "ct": Decimal("0.003500000001")}
                )
                for i in range(3)
            ],
        )
        command.upgrade(config, PREVIOUS)  # 0005 rolls the calls up as the code of 0008 keeps them
    yield engine
    engine.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_upgrade_from_0008_keeps_every_call_and_adds_tags_and_customers(previous: Engine) -> None:
    with previous.connect() as conn:
        before = conn.execute(text("SELECT id, request_id, cost_total FROM api_usage_logs ORDER BY id")).all()
    assert upgrade_database(previous) == [
        f"upgraded the database schema from {PREVIOUS} to {head_revision()}, every row kept"
    ]
    with previous.connect() as conn:
        after = conn.execute(text("SELECT id, request_id, cost_total, tags FROM api_usage_logs ORDER BY id")).all()
        assert [tuple(row)[:3] for row in after] == [tuple(row) for row in before] and all(
            r.tags is None for r in after
        )
        assert conn.execute(text("SELECT count(*) FROM call_tags")).scalar_one() == 0
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert list(compare_metadata(context, all_tables())) == []  # exactly the schema of the models
    assert check_rollups(previous).matches
    initialize_default_pricing(previous)
    record_batch(previous, [make_call("openai", "gpt-4o", 10, 1, timestamp="2026-10-06T10:00:00Z", tags=["new"])])
    assert check_rollups(previous).matches
    assert [(r.key, r.totals.calls) for r in reports.breakdown(previous, *EVERYTHING, "tag")] == [("new", 1)]
    service.add_customer(previous, "acme", "project:acme", "20")
    assert service.statement_for(previous, "acme", "2026-10").totals.cost == Decimal("0.010500000003")
