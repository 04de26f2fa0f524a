"""track(enforce=True) with the real openai client against a local stub (issue 21): a denial sends nothing."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from sqlalchemy import Engine, func, select
from stub_openai import StubOpenAI

from core.budgets import detect
from core.budgets import service as budgets
from core.limits import service
from core.storage.limit_tables import LimitHold
from core.storage.tables import UsageRecord
from core.tracking import SpendLimitExceeded, track

# gpt-4o at the catalog's rates: USD 2.50 per 1M input tokens, 10 per 1M output tokens
MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three lines."}]


def add(engine: Engine, name: str, amount: str, scope: str) -> None:
    detect.forget_budgets()
    spec = budgets.validate(name, amount, "month", scope, "UTC")
    budgets.add_budget(engine, budgets.BudgetSpec(**{**spec.__dict__, "enforce": True}))


def client(stub: StubOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.base_url, api_key="test-key", max_retries=0, timeout=5)


def holds(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LimitHold)).scalar_one()


def test_a_denied_request_is_never_sent_and_raises_naming_the_budget(engine: Engine) -> None:
    add(engine, "free-tier", "0.01", "each:user")
    with StubOpenAI() as stub:
        tracked = track(client(stub), engine, "openai", user="u-17", enforce=True)
        # max_tokens 1000 at USD 10 per 1M is already 0.01, and the prompt costs more than nothing
        with pytest.raises(SpendLimitExceeded) as caught:
            tracked.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1000)
        assert stub.requests == []
    error = caught.value
    assert error.budget == "free-tier" and error.subject == "u-17" and error.remaining == Decimal("0.01")
    assert "free-tier" in str(error) and "0.01" in str(error)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 0
    assert holds(engine) == 0


def test_an_allowed_request_is_sent_and_its_recorded_cost_replaces_the_hold(engine: Engine) -> None:
    add(engine, "free-tier", "1", "each:user")
    with StubOpenAI(prompt_tokens=1000, completion_tokens=500) as stub:
        tracked = track(client(stub), engine, "openai", user="u-18", enforce=True)
        answer = tracked.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=200)
        assert answer.id == "chatcmpl-stub-0001" and len(stub.requests) == 1
    assert holds(engine) == 0  # settled in the recording's transaction
    state = service.check(engine, service.validate(engine, user="u-18", estimated_cost="0")).limits[0]
    assert state.spend == Decimal("0.0075") and state.held == 0  # 1000 x 2.5e-6 + 500 x 1e-5


def test_without_max_tokens_the_catalog_limit_is_assumed(engine: Engine) -> None:
    # gpt-4o's 128,000-token window at USD 10 per 1M output tokens is about USD 1.28: USD 1 is not enough
    add(engine, "team", "1", "project:research")
    with StubOpenAI() as stub:
        tracked = track(client(stub), engine, "openai", project="research", enforce=True)
        with pytest.raises(SpendLimitExceeded):
            tracked.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert stub.requests == []
        untracked_project = track(client(stub), engine, "openai", project="other", enforce=True)
        untracked_project.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(stub.requests) == 1


def test_a_failed_request_releases_its_hold(engine: Engine) -> None:
    add(engine, "cap", "5", "all")
    with StubOpenAI(mode="unauthorized") as stub:
        tracked = track(client(stub), engine, "openai", enforce=True)
        with pytest.raises(openai.AuthenticationError):
            tracked.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
        assert len(stub.requests) == 1
    assert holds(engine) == 0
