"""PostgreSQL: the holds table keeps its pages when a vacuum empties it (migration 0020), so a reserve's
prepared statement, planned once per connection, is never planned for an empty table: after a burst of
holds is gone and vacuumed, the reserve's locked read still reaches the holds through their indexes (a plan
made for an empty table scanned every hold, once for the request id and once per counter, while the next
burst filled the table: 0.3 -> 7-10 ms a reserve at 40,000 holds). Upgraded from 0019 and back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from pg_schema import PG_URL, own_schema
from sqlalchemy import Engine, event, insert, text

import core.limits  # noqa: F401 - the counters kept on recording
from core.budgets import detect
from core.budgets.service import add_budget, validate
from core.limits import service
from core.storage.engine import make_engine
from core.storage.limit_tables import LimitHold
from core.storage.migrate import upgrade_database
from core.storage.migrations import alembic_config

pytestmark = pytest.mark.skipif(PG_URL is None, reason="needs TEST_DATABASE_URL (PostgreSQL)")


@pytest.fixture
def engine() -> Iterator[Engine]:
    with own_schema("sb_holds_pages") as url:
        made = make_engine(url)
        upgrade_database(made)
        detect.forget_budgets()
        yield made
        detect.forget_budgets()
        made.dispose()


def _reloptions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = to_regclass('limit_holds')")
        ).scalar_one()
    return list(found or [])


def _emptied_and_vacuumed(engine: Engine) -> None:
    """A burst of 3,000 holds, all gone (recorded or expired), then a vacuum of the table."""
    moment = datetime.now(UTC)
    rows = [
        {
            "request_id": f"burst-{i}",
            "budget_id": 1,
            "subject": "",
            "period_start": moment,
            "amount": Decimal("0.01"),
            "created_at": moment,
            "expires_at": moment + timedelta(minutes=5),
        }
        for i in range(3000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(LimitHold), rows)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM limit_holds"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM limit_holds"))


def _generic_plan_of_the_locked_read(engine: Engine) -> str:
    """The plan PostgreSQL keeps for a prepared reserve's locked read (``force_generic_plan``: the one a
    connection reuses after its first executions)."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        request = service.validate(engine, estimated_cost="0.01", reserve=True, request_id="probe-1", user="u-1")
        assert service.decide(engine, request).allowed
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    (statement, params), *_ = [(s, p) for s, p in seen if "FOR UPDATE" in s]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN " + statement, params)
        return "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


def test_after_a_burst_of_holds_is_vacuumed_away_a_reserve_still_reads_the_holds_by_their_indexes(
    engine: Engine,
) -> None:
    for name, amount, scope in (("all", "100", "all"), ("free", "2", "each:user")):
        add_budget(engine, validate(name, amount, "month", scope, enforce=True))
    assert _reloptions(engine) == ["vacuum_truncate=false"]
    _emptied_and_vacuumed(engine)
    with engine.connect() as conn:
        pages = conn.execute(text("SELECT relpages FROM pg_class WHERE oid = to_regclass('limit_holds')")).scalar_one()
    assert pages > 10  # kept: the table is costed by its size on disk, not as an empty one
    plan = _generic_plan_of_the_locked_read(engine)
    assert "limit_holds" in plan
    assert "Seq Scan on limit_holds" not in plan, plan


def test_the_setting_is_made_by_the_upgrade_and_taken_off_by_the_way_back(engine: Engine) -> None:
    def to(revision: str, down: bool) -> None:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)

    to("0019_counter_key_by_period", down=True)
    assert _reloptions(engine) == []
    to("head", down=False)
    assert _reloptions(engine) == ["vacuum_truncate=false"]
