"""The Budgets page through AppTest: rows, burn-up, history, admin add form and resend; the Overview banner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from budget_receiver import receiver
from streamlit.testing.v1 import AppTest

from core.budgets import detect, service
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    detect.forget_budgets()
    return url


@pytest.fixture(autouse=True)
def check_after_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection after recording runs at most once a second in production; here after every batch."""
    monkeypatch.setattr(detect, "MIN_INTERVAL_SECONDS", 0.0)
    monkeypatch.setenv("SPENDBOARD_WEBHOOK_ALLOW_PRIVATE", "1")  # the receivers here listen on 127.0.0.1


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("app_pages/budgets.py").run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest, label: str) -> None:
    [b for b in at.form_submit_button if b.label == label][0].click().run()


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.info]
    parts += [e.value for e in at.success] + [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def _seed(url: str, hook_url: str | None = None) -> None:
    engine = make_engine(url)
    from core.storage.migrate import create_tables

    create_tables(engine)
    spec = service.validate("**Team** <b>", "10", "month", "all", "Europe/Berlin", "50,80,100", hook_url)
    service.add_budget(engine, spec, now=datetime.now(UTC) - timedelta(days=40))
    record_batch(engine, [make_call("acme", "model-x", 6_000_000, 0, timestamp=datetime.now(UTC) - timedelta(hours=1))])
    engine.dispose()
    st.cache_data.clear()


def test_empty_page_explains_the_command(app_db: str) -> None:
    at = _page()
    assert "No budgets yet" in _texts(at)


def test_page_shows_rows_chart_history(app_db: str) -> None:
    _seed(app_db)
    at = _page()
    text = _texts(at)
    assert "\\*\\*Team\\*\\* \\<b\\>" in text  # the name shown literally
    assert "$6.00" in text and "$10.00" in text and "60%" in text
    assert "50% ✓ · 80% ○ · 100% ○" in text
    assert "resets in" in text and "Europe/Berlin" in text
    assert len(at.get("progress")) == 1
    assert at.get("plotly_chart")
    (table,) = at.dataframe
    history = table.value
    assert list(history["Threshold"]) == ["50%"] and list(history["Delivery"]) == ["recorded (no webhook)"]
    # the period in the budget's own zone (issue 22, point 10): a Berlin month starts at midnight there
    (period,) = history["Period from"]
    assert period.endswith("-01 00:00 (Europe/Berlin)"), period


def test_admin_adds_a_budget_and_bad_input_is_named(app_db: str) -> None:
    at = _page()
    at.text_input(key="admin_password").input(PASSWORD)
    _submit(at, "Sign in")
    assert not at.exception, at.exception
    at.text_input(key="budget_name").input("ops")
    at.text_input(key="budget_amount").input("0")
    _submit(at, "Add budget")
    assert "amount: '0' is not above zero" in _texts(at)
    at.text_input(key="budget_amount").input("25.5")
    at.text_input(key="budget_webhook").input("https://hooks.example.com/budget")
    _submit(at, "Add budget")
    assert "Budget 'ops' added." in _texts(at)
    assert at.code[0].value.startswith("whsec_")
    assert "**ops**" in _texts(at)  # in the list in the same answer, not after a reload (issue 22, point 10)
    engine = make_engine(app_db)
    try:
        (status,) = service.list_status(engine)
        assert status.budget.name == "ops" and str(status.budget.amount) == "25.5"
    finally:
        engine.dispose()


def test_admin_resends_an_alert(app_db: str) -> None:
    with receiver() as hook:
        hook.answers = [503]
        _seed(app_db, hook.url)
        engine = make_engine(app_db)
        try:
            assert service.check(engine).report.retrying == 1
        finally:
            engine.dispose()
        at = _page()
        at.text_input(key="admin_password").input(PASSWORD)
        _submit(at, "Sign in")
        _submit(at, "Resend")
        assert not at.exception, at.exception
        assert "Sent again, with the same webhook-id." in _texts(at)
        assert len(hook.received) == 2
        assert hook.received[0].headers["webhook-id"] == hook.received[1].headers["webhook-id"]


def test_banner_shows_a_budget_past_a_threshold(app_db: str) -> None:
    _seed(app_db)
    script = f"""
import streamlit as st
from core.storage.engine import make_engine
from ui.budget_banner import render
render(make_engine({app_db!r}))
st.write("after")
"""
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception, at.exception
    (warning,) = at.warning
    assert "$6.00 of $10.00 this month" in warning.value and "past 50%" in warning.value
