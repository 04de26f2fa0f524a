"""Migrations 0016 and 0019 on a database of 0015: counters kept, the page's closest subjects unchanged, the
index with ``spend`` gone (0016), the unique key by period before subject with no period index beside it
(0019), and a reserve and a recording upserting through the new key; and back down again. SQLite and (with
TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from pg_schema import BACKENDS, own_schema
from sqlalchemy import Engine, inspect, select, text

from core.storage.engine import make_engine
from core.storage.limit_tables import LimitCounter
from core.storage.migrate import head_revision, upgrade_database
from core.storage.migrations import alembic_config

PREVIOUS = "0015_enforced_limits"
START = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def previous(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at 0015 with an each:user budget and five counters."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'r3.db'}"
        else:
            url = stack.enter_context(own_schema("sb_mig16"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        _fill(engine)
        yield engine


def _fill(engine: Engine) -> None:
    sqlite = engine.dialect.name == "sqlite"

    def instant(moment: datetime) -> object:  # as the UTCDateTime column stores it: text of naive UTC on SQLite
        return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment

    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
        conn.execute(
            text(
                "INSERT INTO budgets (name, amount, currency, period, tz, scope_kind, scope_value, thresholds, "
                "webhook_format, created_at, enforce) VALUES ('free', :a, 'USD', 'month', 'UTC', 'each', 'user', "
                "'100', 'standard', :t, :e)"
            ),
            {"a": 2 * 10**12 if sqlite else Decimal(2), "t": instant(START), "e": True},
        )
        conn.execute(
            text(
                "INSERT INTO limit_counters (budget_id, subject, period_start, period_end, spend, held, version, "
                "stale, corrections_seen, denied) VALUES (1, :s, :p, :e, :spend, 0, 1, :f, 0, :d)"
            ),
            [
                {
                    "s": f"u-{i}",
                    "p": instant(START),
                    "e": instant(datetime(2027, 1, 1, tzinfo=UTC)),
                    "spend": (i * 10**11) if sqlite else Decimal(i) / 10,
                    "f": False,
                    "d": i % 2,
                }
                for i in range(1, 6)
            ],
        )


def _indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {i["name"] for i in inspect(conn).get_indexes("limit_counters")}


def _key(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        (key,) = [
            u for u in inspect(conn).get_unique_constraints("limit_counters") if u["name"] == "uq_limit_counter_key"
        ]
        return list(key["column_names"])


def test_the_counters_and_the_closest_subjects_survive_the_upgrade_and_the_way_back(previous: Engine) -> None:
    def closest() -> list[tuple[str, Decimal, int]]:
        # the counters of a budget's period by spend, as the Budgets page ranked them when the index was made
        c = LimitCounter.__table__.c
        query = (
            select(c.subject, c.spend, c.denied)
            .where(c.budget_id == 1, c.period_start == START)
            .order_by(c.spend.desc(), c.subject)
            .limit(3)
        )
        with previous.connect() as conn:
            return [(row.subject, row.spend, row.denied) for row in conn.execute(query)]

    before = closest()
    assert before == [("u-5", Decimal("0.5"), 1), ("u-4", Decimal("0.4"), 0), ("u-3", Decimal("0.3"), 1)]
    assert "ix_limit_counters_rank" in _indexes(previous)
    assert _key(previous) == ["budget_id", "subject", "period_start"]
    upgrade_database(previous)
    with previous.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
    assert not {"ix_limit_counters_rank", "ix_limit_counters_period"} & _indexes(previous)
    assert _key(previous) == ["budget_id", "period_start", "subject"]
    assert closest() == before

    def downgrade(to: str) -> None:
        with previous.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, to)

    downgrade("0018_tag_six_hours")
    assert "ix_limit_counters_period" in _indexes(previous) and _key(previous) == [
        "budget_id",
        "subject",
        "period_start",
    ]
    assert closest() == before
    downgrade(PREVIOUS)
    assert "ix_limit_counters_rank" in _indexes(previous) and "ix_limit_counters_period" not in _indexes(previous)
    assert closest() == before


def test_reserves_and_recordings_upsert_through_the_new_key(previous: Engine) -> None:
    """At head, a reserve makes and locks its each: counter and a recording settles the hold through the key
    (budget_id, period_start, subject): the upserts' conflict targets still name it."""
    import core.limits  # noqa: F401 - the counters kept on recording
    from core.budgets import detect
    from core.limits import service
    from core.recording.calls import make_call, record_usage

    upgrade_database(previous)
    detect.forget_budgets()
    with previous.begin() as conn:  # the budget's period is this month's, whenever the test runs
        conn.execute(text("DELETE FROM limit_counters"))
    request = service.validate(previous, estimated_cost="1.5", reserve=True, request_id="m19", user="u-9")
    assert service.decide(previous, request).allowed
    assert not service.decide(previous, service.validate(previous, estimated_cost="0.6", user="u-9")).allowed
    record_usage(previous, make_call("acme-llm", "m", 1_000_000, 0, user="u-9", request_id="m19"))
    (state,) = service.check(previous, service.validate(previous, estimated_cost="0", user="u-9")).limits
    assert (state.spend, state.held, state.remaining) == (Decimal(1), 0, Decimal(1))
    detect.forget_budgets()
