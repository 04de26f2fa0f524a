"""Budgets with ``--scope tag:T``: spend of the calls carrying T, one event per crossing; bad tags refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from core.budgets import detect, service
from core.cli.main import main
from core.recording.calls import Call, make_call, record_batch
from core.storage.budget_tables import BudgetEvent


@pytest.fixture(autouse=True)
def check_after_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "MIN_INTERVAL_SECONDS", 0.0)


def usd(amount: str, *tags: str) -> Call:
    """A call costing exactly ``amount`` (the $1 per 1M tokens estimate) with these tags."""
    moment = datetime.now(UTC) - timedelta(minutes=1)
    return make_call("acme", "model-x", int(Decimal(amount) * 1_000_000), 0, timestamp=moment, tags=list(tags))


def test_tag_budget_counts_calls_carrying_the_tag(engine: Engine) -> None:
    created = datetime.now(UTC) - timedelta(days=40)
    for name, scope in (("summaries", "tag:feature:summarize"), ("prod", "tag:env:prod")):
        spec = service.validate(name, "1", "month", scope=scope, thresholds="100")
        service.add_budget(engine, spec, now=created)
    record_batch(engine, [usd("0.6", "feature:summarize", "env:prod"), usd("0.3", "feature:chat", "env:prod")])
    record_batch(engine, [usd("5", "Feature:Summarize")])  # another tag: tags are case-sensitive
    status = {s.budget.name: s for s in service.list_status(engine)}
    assert status["summaries"].spend == Decimal("0.6") and status["prod"].spend == Decimal("0.9")
    with engine.connect() as conn:
        assert conn.execute(select(BudgetEvent)).all() == []
    record_batch(engine, [usd("0.2", "env:prod")])  # prod reaches 1.10: one event
    with engine.connect() as conn:
        events = conn.execute(select(BudgetEvent.budget_id, BudgetEvent.spend)).all()
    assert [(e.budget_id, e.spend) for e in events] == [(status["prod"].budget.id, Decimal("1.1"))]
    assert detect.reconcile(engine) == 0  # exactly once


def test_bad_tag_scope_is_refused(db_url: str, engine: Engine, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = main(["budgets", "add", "--name", "x", "--amount", "1", "--period", "day", "--scope", "tag:" + "y" * 101])
    assert code == 2
    assert "scope[0]: at most 100 characters" in capsys.readouterr().err
    assert main(["budgets", "add", "--name", "x", "--amount", "1", "--period", "day", "--scope", "tag:ok"]) == 0
    assert "scope tag:ok" in capsys.readouterr().out
