"""Migration 0016_shared_limit_counters on a database of 0015: budgets' counters, holds and denials kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text

import core.limits  # noqa: F401 - the counters kept on recording, as every entrypoint does
from core.budgets import detect
from core.budgets.periods import period_of
from core.limits import service, views
from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine
from core.storage.limit_tables import LimitCounter, LimitDenial, LimitHold
from core.storage.migrate import upgrade_database
from core.storage.migrations import alembic_config
from core.times import now_utc

PREVIOUS = "0015_enforced_limits"
PICO = 10**12


@pytest.fixture
def previous(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
    detect.forget_budgets()
    return engine


def _stamp(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    )  # as SQLAlchemy stores it


def test_counters_holds_and_denials_of_0015_are_kept_once_per_shared_counter(previous: Engine) -> None:
    now = now_utc()
    month = period_of(now, "month", UTC)  # type: ignore[arg-type]
    day = period_of(now, "day", UTC)  # type: ignore[arg-type]
    with previous.begin() as conn:
        budgets = [  # id, name, amount, period, scope kind, scope value
            (1, "per-user", 5, "month", "each", "user"),
            (2, "u-1 cap", 3, "month", "user", "u-1"),  # shares u-1's month counter with per-user
            (3, "org", 100, "month", "all", None),
            (4, "org daily", 10, "day", "all", None),  # the same scope, another period: its own counter
        ]
        for id_, name, amount, period, kind, value in budgets:
            conn.execute(
                text(
                    "INSERT INTO budgets (id, name, amount, currency, period, tz, scope_kind, scope_value, enforce, "
                    "thresholds, webhook_format, created_at) VALUES (:id, :name, :amount, 'USD', :period, 'UTC', "
                    ":kind, :value, 1, '100', 'standard', :t)"
                ),
                dict(
                    id=id_,
                    name=name,
                    amount=amount * PICO,
                    period=period,
                    kind=kind,
                    value=value,
                    t=_stamp(month.start),
                ),
            )
        counters = [  # budget, subject, period, spend, held, denied
            (1, "u-1", month, 1, 2, 4),
            (2, "", month, 1, 2, 1),
            (1, "u-2", month, 0, 0, 7),
            (3, "", month, 1, 2, 0),
            (4, "", day, 1, 2, 0),
        ]
        for budget_id, subject, period, spend, held, denied in counters:
            conn.execute(
                text(
                    "INSERT INTO limit_counters (budget_id, subject, period_start, period_end, spend, held, version, "
                    "stale, corrections_seen, denied) VALUES (:b, :s, :start, :end, :spend, :held, 3, 0, 0, :denied)"
                ),
                dict(
                    b=budget_id,
                    s=subject,
                    start=_stamp(period.start),
                    end=_stamp(period.end),
                    spend=spend * PICO,
                    held=held * PICO,
                    denied=denied,
                ),
            )
        # one reserve of USD 2 held on each of the four budgets that applied to u-1
        for budget_id, subject, period in [(1, "u-1", month), (2, "", month), (3, "", month), (4, "", day)]:
            conn.execute(
                text(
                    "INSERT INTO limit_holds (request_id, budget_id, subject, period_start, amount, created_at, "
                    "expires_at) VALUES ('r-1', :b, :s, :start, :amount, :t, :exp)"
                ),
                dict(
                    b=budget_id,
                    s=subject,
                    start=_stamp(period.start),
                    amount=2 * PICO,
                    t=_stamp(now),
                    exp=_stamp(now + timedelta(hours=1)),
                ),
            )
    upgrade_database(previous)
    with previous.connect() as conn:
        assert {"limit_counters", "limit_holds", "limit_denials"} <= set(inspect(conn).get_table_names())
        assert not {"limit_counters_0015", "limit_holds_0015"} & set(inspect(conn).get_table_names())
        c = LimitCounter.__table__.c
        rows = conn.execute(
            select(c.scope_kind, c.subject, c.period_start, c.held, c.stale).order_by(
                c.scope_kind, c.period_start, c.subject
            )
        ).all()
        assert sorted(tuple(r) for r in rows) == sorted(
            [
                ("all", "", day.start, Decimal(2), True),
                ("all", "", month.start, Decimal(2), True),
                ("user", "u-1", month.start, Decimal(2), True),  # per-user and u-1 cap: one counter, one hold
                ("user", "u-2", month.start, Decimal(0), True),
            ]
        )
        h = LimitHold.__table__.c
        holds = conn.execute(
            select(h.request_id, h.scope_kind, h.subject, h.amount).order_by(h.scope_kind, h.period_start)
        )
        assert sorted(tuple(r) for r in holds) == [
            ("r-1", "all", "", Decimal(2)),
            ("r-1", "all", "", Decimal(2)),
            ("r-1", "user", "u-1", Decimal(2)),
        ]
        d = LimitDenial.__table__.c
        denied = conn.execute(select(d.budget_id, d.subject, d.denied).order_by(d.budget_id, d.subject)).all()
        assert [tuple(r) for r in denied] == [(1, "u-1", 4), (1, "u-2", 7), (2, "", 1)]
    # the upgraded database works: spend summed again from the roll-ups, the hold still counts, once
    initialize_default_pricing(previous)
    record_usage(previous, make_call("acme-llm", "m-1", 500_000, 0, user="u-1"))  # USD 0.50 at the estimate
    decision = service.decide(previous, service.validate(previous, estimated_cost="0.50", user="u-1"))
    assert [(s.budget, s.spend, s.held) for s in decision.limits] == [
        ("per-user", Decimal("0.50"), Decimal(2)),
        ("u-1 cap", Decimal("0.50"), Decimal(2)),
        ("org", Decimal("0.50"), Decimal(2)),
        ("org daily", Decimal("0.50"), Decimal(2)),
    ]
    assert decision.allowed  # u-1 cap: 3 - 0.50 - 2 = 0.50 left
    assert not service.decide(previous, service.validate(previous, estimated_cost="0.51", user="u-1")).allowed
    assert {r.name: r.denied for r in views.enforced(previous)} == {
        "per-user": 11,
        "u-1 cap": 2,
        "org": 0,
        "org daily": 0,
    }
    # the call of the hold arrives: its hold goes from every counter it was on
    record_usage(previous, make_call("acme-llm", "m-1", 1_000_000, 0, user="u-1", request_id="r-1"))
    with previous.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LimitHold)).scalar_one() == 0
        assert set(conn.execute(select(LimitCounter.held)).scalars()) == {Decimal(0)}


def test_downgrade_gives_each_budget_its_counter_and_holds_back(previous: Engine) -> None:
    upgrade_database(previous)
    now = now_utc()
    with previous.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO budgets (id, name, amount, currency, period, tz, scope_kind, scope_value, enforce, "
                "thresholds, webhook_format, created_at) VALUES (1, 'per-user', :a, 'USD', 'month', 'UTC', 'each', "
                "'user', 1, '100', 'standard', :t), (2, 'u-1 cap', :a, 'USD', 'month', 'UTC', 'user', 'u-1', 1, "
                "'100', 'standard', :t)"
            ),
            dict(a=5 * PICO, t=_stamp(now)),
        )
    initialize_default_pricing(previous)
    assert service.decide(
        previous, service.validate(previous, estimated_cost="1", user="u-1", reserve=True, request_id="r-9")
    ).allowed
    config = alembic_config()
    with previous.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, PREVIOUS)
    with previous.connect() as conn:
        holds = conn.execute(text("SELECT request_id, budget_id, subject FROM limit_holds ORDER BY budget_id")).all()
        assert [tuple(r) for r in holds] == [("r-9", 1, "u-1"), ("r-9", 2, "")]
        counters = conn.execute(text("SELECT budget_id, subject, held, stale FROM limit_counters ORDER BY budget_id"))
        assert [tuple(r) for r in counters] == [(1, "u-1", PICO, 1), (2, "", PICO, 1)]
