"""Issue 19, point 10: the test call spends the operator's token, so it needs the admin and is rate-limited;
the provider's reply is text, never Markdown."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest
from stub_openai import StubOpenAI

from core.storage.tables import UsageRecord
from ui.signin import SIGNED_IN_KEY

PASSWORD = "correct horse battery staple"
RATE_LIMIT = 10  # test calls per browser session in 10 minutes
REPLY = "![x](http://127.0.0.1:9/leak.png) [click](http://example.com) **bold**"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch):
    with StubOpenAI(delay=0.0, reply=REPLY, response_id=None) as server:
        monkeypatch.setenv("HF_BASE_URL", server.base_url)
        monkeypatch.setenv("HF_TOKEN", "test-token")
        monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
        yield server


def panel_app() -> None:
    from core.storage.engine import make_engine
    from ui.test_call_panel import render

    render(make_engine())


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def open_panel(db_url: str, monkeypatch: pytest.MonkeyPatch, signed_in: bool) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", db_url)
    at = AppTest.from_function(panel_app, default_timeout=30)
    if signed_in:
        at.session_state[SIGNED_IN_KEY] = time.time() + 3600
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_viewer_cannot_make_a_test_call(engine: Engine, db_url: str, stub: StubOpenAI, monkeypatch) -> None:
    at = open_panel(db_url, monkeypatch, signed_in=False)
    assert [b.label for b in at.button] == ["Sign in"]  # no "Make a test call" without the admin
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert at.error[0].value.startswith("Wrong password")
    assert [b.label for b in at.button] == ["Sign in"]
    assert stub.requests == [] and count(engine) == 0
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert "Make a test call" in [b.label for b in at.button]


def test_the_reply_is_text_and_the_eleventh_call_in_ten_minutes_is_refused(
    engine: Engine, db_url: str, stub: StubOpenAI, monkeypatch
) -> None:
    at = open_panel(db_url, monkeypatch, signed_in=True)
    for _ in range(RATE_LIMIT):
        at.button[0].click().run()
        assert not at.error, at.error[0].value
    assert [t.value for t in at.text if t.value.startswith("Reply:")] == [f"Reply: {REPLY}"]
    assert all(REPLY not in m.value for m in [*at.markdown, *at.caption])  # never rendered as Markdown
    at.button[0].click().run()
    assert "At most 10 test calls in 10 minutes" in at.error[0].value
    assert len(stub.requests) == RATE_LIMIT and count(engine) == RATE_LIMIT


def test_the_rate_window() -> None:
    from ui.test_call_panel import rate_wait

    now = 10_000.0
    assert rate_wait([now - 1] * 9, now) == 0
    assert rate_wait([now - 599] + [now - 1] * 9, now) == 1
    assert rate_wait([now - 600] + [now - 1] * 9, now) == 0
