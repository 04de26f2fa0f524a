"""Migration 0015_enforced_limits on a database of the previous release: every budget and event kept."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from core.limits import service
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database
from core.storage.migrations import alembic_config

PREVIOUS = "0014_key_scopes"


@pytest.fixture
def previous(tmp_path: Path, pg_schema_url: str | None, request: pytest.FixtureRequest) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
    return engine


def test_a_release_2_database_upgrades_in_place_keeping_budgets_and_events(previous: Engine) -> None:
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with previous.begin() as conn:
        assert "enforce" not in {c["name"] for c in inspect(conn).get_columns("budgets")}
        conn.execute(
            text(
                "INSERT INTO budgets (name, amount, currency, period, tz, scope_kind, thresholds, webhook_format, "
                "created_at) VALUES ('team', 100000000000000, 'USD', 'month', 'UTC', 'all', '50,100', 'standard', "
                ":t)"
            ),
            {"t": moment.isoformat()},
        )
        conn.execute(
            text(
                "INSERT INTO budget_events (budget_id, period_start, period_end, threshold, webhook_id, spend, amount,"
                " late, created_at, status, attempts) VALUES (1, :t, :t, 50, 'msg_1', 60000000000000, "
                "100000000000000, 0, :t, 'delivered', 1)"
            ),
            {"t": moment.isoformat()},
        )
        conn.execute(
            text(
                "INSERT INTO budget_deliveries (event_id, attempt, attempted_at, status_code, outcome) "
                "VALUES (1, 1, :t, 200, 'delivered')"
            ),
            {"t": moment.isoformat()},
        )
    upgrade_database(previous)
    from core.storage.budget_tables import Budget, BudgetEvent

    with previous.begin() as conn:
        budget = conn.execute(select(Budget)).one()
        assert budget.name == "team" and budget.amount == Decimal(100) and budget.enforce is False
        event = conn.execute(select(BudgetEvent)).one()
        assert event.subject == "" and event.threshold == 50 and event.spend == Decimal(60)
        assert conn.execute(text("SELECT event_id, status_code FROM budget_deliveries")).all() == [(1, 200)]
        # the same (budget, period, threshold) for another subject is a new event; for the same subject it is not
        row = dict(
            budget_id=1,
            period_start=event.period_start,
            period_end=event.period_end,
            threshold=50,
            spend=Decimal(1),
            amount=Decimal(1),
            late=False,
            created_at=moment,
            status="no_webhook",
            attempts=0,
        )
        conn.execute(insert(BudgetEvent).values(**row, subject="u-1", webhook_id="msg_2"))
        assert {t for t in inspect(conn).get_table_names()} >= {"limit_counters", "limit_holds"}
        uniques = {tuple(u["column_names"]) for u in inspect(conn).get_unique_constraints("budget_events")}
        assert ("budget_id", "period_start", "threshold", "subject") in uniques
    with pytest.raises(IntegrityError):
        with previous.begin() as conn:
            conn.execute(insert(BudgetEvent).values(**row, subject="u-1", webhook_id="msg_3"))
    # and a check works on the upgraded database
    decision = service.decide(previous, service.validate(previous, estimated_cost="1"))
    assert decision.allowed and decision.limits == ()
