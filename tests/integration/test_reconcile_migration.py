"""Migration 0010_reconciliation upgrades a database built at the previous revision in place, every row kept."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, func, inspect, select, text

from core.pricing.seeding import initialize_default_pricing
from core.reconcile.lines import CostLine, Fetched
from core.reconcile.store import billed, store_fetched
from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine
from core.storage.migrate import current_revision, head_revision, upgrade_database
from core.storage.migrations import alembic_config
from core.storage.tables import UsageRecord, UsageRollup

PREVIOUS = "0009_tags_and_customers"
NEW = {"reconcile_billed_costs", "reconcile_billed_usage", "reconcile_days"}
PG_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def previous_head(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database made by the migrations up to the previous head, with calls in it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'previous.db'}"
        admin = None
    else:
        assert PG_URL is not None
        schema = f"sb_rec_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
    try:
        yield engine
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_the_previous_head_is_upgraded_in_place_every_row_kept(
    previous_head: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = previous_head
    assert not NEW & set(inspect(engine).get_table_names())
    initialize_default_pricing(engine)
    at = datetime(2026, 11, 3, 10, tzinfo=UTC).isoformat()
    # calls as that release stored them: today's hooks (budgets, limits) read columns later revisions add
    import core.recording.hooks as hooks

    monkeypatch.setattr(hooks, "_after_commit", [])
    monkeypatch.setattr(hooks, "_in_transaction", [])
    for n in range(3):
        record_usage(engine, make_call("anthropic", "claude-sonnet-4-5", 1000 + n, 100, timestamp=at))
    monkeypatch.undo()
    with engine.connect() as conn:
        before = conn.execute(select(func.count(), func.sum(UsageRecord.cost_total)).select_from(UsageRecord)).one()
        rollups = conn.execute(select(func.count()).select_from(UsageRollup)).scalar_one()

    assert upgrade_database(engine) == [
        f"upgraded the database schema from {PREVIOUS} to {head_revision()}, every row kept"
    ]
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert NEW <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        after = conn.execute(select(func.count(), func.sum(UsageRecord.cost_total)).select_from(UsageRecord)).one()
        assert conn.execute(select(func.count()).select_from(UsageRollup)).scalar_one() == rollups
    assert tuple(after) == tuple(before)
    # the new tables take a report at once
    day = date(2026, 11, 3)
    stored = store_fetched(
        engine,
        Fetched(
            "anthropic",
            (CostLine("anthropic", day, "claude-sonnet-4-5", "output_tokens", Decimal("41.25")),),
            (),
            frozenset({day}),
            frozenset(),
        ),
    )
    assert stored.lines == 1
    days, amounts, _tokens = billed(engine, ["anthropic"], day, day)
    assert [(a.model, a.amount) for a in amounts] == [("claude-sonnet-4-5", Decimal("41.25"))]
    assert [(d.cost_known, d.usage_known) for d in days] == [(True, False)]
