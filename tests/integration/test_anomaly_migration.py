"""Migration 0013_anomalies on a database of the previous revision (0010): budgets, their outbox rows and their
attempts are kept; the new tables and columns match the models; an anomaly's outbox row fits; downgrade works.

Uses the fixtures of test_migrations.py (a database of its own per test, on SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from alembic import command
from sqlalchemy import Engine, MetaData, Table, inspect, text

from core.storage.migrations import alembic_config
from tests.integration.test_migrations import _schema_diff, blank, blank_url  # noqa: F401 - fixtures

PREVIOUS = "0010_reconciliation"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _to(engine: Engine, revision: str, down: bool = False) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


LATER = {"budgets": {"enforce"}, "budget_events": {"subject"}}  # columns of migrations after this one


def _as_then(table: Table) -> Table:
    """The model's table without the columns later revisions add (their defaults would be written too)."""
    return Table(table.name, MetaData(), *[c._copy() for c in table.columns if c.name not in LATER.get(table.name, ())])


def _fill_budgets(engine: Engine) -> None:
    """A budget with two outbox rows and an attempt, written as release 3 before anomalies wrote them."""
    from core.storage.budget_tables import Budget, BudgetDelivery, BudgetEvent

    with engine.begin() as conn:
        conn.execute(
            _as_then(Budget.__table__).insert(),
            [dict(id=1, name="team", amount=Decimal("10"), currency="USD", period="month", tz="UTC",
                  scope_kind="all", thresholds="50,100", webhook_url="https://example.com/h",
                  webhook_secret=None, webhook_format="standard", created_at=T0)],
        )  # fmt: skip
        conn.execute(
            _as_then(BudgetEvent.__table__).insert(),
            [dict(id=i, budget_id=1, period_start=T0, period_end=T0 + timedelta(days=30), threshold=t,
                  webhook_id=f"msg_{i}", spend=Decimal("6.5"), amount=Decimal("10"), late=False,
                  created_at=T0, status="delivered", attempts=1) for i, t in ((1, 50), (2, 100))],
        )  # fmt: skip
        conn.execute(
            BudgetDelivery.__table__.insert(),
            [dict(id=1, event_id=1, attempt=1, attempted_at=T0, status_code=200, outcome="delivered")],
        )


def _rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            "budgets": conn.execute(text("SELECT id, name, amount, webhook_url FROM budgets ORDER BY id")).all(),
            "budget_events": conn.execute(
                text("SELECT id, budget_id, threshold, webhook_id, spend, status FROM budget_events ORDER BY id")
            ).all(),
            "budget_deliveries": conn.execute(text("SELECT id, event_id, outcome FROM budget_deliveries")).all(),
        }


def test_0013_upgrades_the_previous_head_in_place_and_back(blank: Engine) -> None:  # noqa: F811
    from core.storage.anomaly_tables import Alert, AnomalyRecord
    from core.storage.budget_tables import BudgetEvent
    from core.storage.schema import metadata

    _to(blank, PREVIOUS)
    _fill_budgets(blank)
    before = _rows(blank)
    _to(blank, "0013_anomalies")
    assert _rows(blank) == before
    _to(blank, "head")  # and the revisions after it: the tables are then exactly the models'
    assert _schema_diff(blank, metadata) == []
    columns = {c["name"]: c for c in inspect(blank).get_columns("budget_events")}
    assert columns["budget_id"]["nullable"] and {"alert_id", "anomaly_id"} <= set(columns)
    with blank.begin() as conn:  # an anomaly's outbox row: no budget, an alert and an anomaly
        conn.execute(Alert.__table__.insert().values(id=1, webhook_url="https://example.com/a", created_at=T0))
        conn.execute(
            AnomalyRecord.__table__.insert().values(
                id=1, scope="user", key="batch-7", hour=T0, spend=Decimal("31.4"), baseline=Decimal(2),
                ratio="15.70", late=False, found_at=T0,
            )
        )  # fmt: skip
        conn.execute(
            BudgetEvent.__table__.insert().values(
                id=3, budget_id=None, alert_id=1, anomaly_id=1, period_start=T0, period_end=T0 + timedelta(hours=1),
                threshold=0, webhook_id="msg_3", spend=Decimal("31.4"), amount=Decimal(2), late=False,
                created_at=T0, status="pending", attempts=0,
            )
        )  # fmt: skip
    _to(blank, PREVIOUS, down=True)
    assert _rows(blank) == before  # the anomaly's row goes with its tables; the budgets' stay
    assert not {"anomalies", "alerts"} & set(inspect(blank).get_table_names())
