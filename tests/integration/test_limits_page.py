"""The Budgets page's enforced budgets (issue 21) through AppTest: denials this period, the top N subjects, search."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.limits  # noqa: F401 - the counters kept on recording, as every entrypoint does
from core.budgets import detect, service
from core.limits import service as limits
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.migrate import create_tables

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    detect.forget_budgets()
    engine = make_engine(url)
    create_tables(engine)
    for name, scope in [("free-tier", "each:user"), ("org-cap", "all")]:
        spec = service.validate(name, "2" if scope != "all" else "1000", "month", scope, "UTC")
        service.add_budget(engine, service.BudgetSpec(**{**spec.__dict__, "enforce": True}))
    # 40 users: u-00 spends USD 0.00, u-01 USD 0.05, ... u-39 USD 1.95 (estimate price: USD 1 per 1M tokens)
    record_batch(engine, [make_call("acme-llm", "m", 50_000 * i, 0, user=f"u-{i:02d}") for i in range(40)])
    for user in ("u-39", "u-39", "u-38"):
        decision = limits.decide(engine, limits.validate(engine, user=user, estimated_cost="0.11"))
        assert not decision.allowed
    engine.dispose()
    return url


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("app_pages/budgets.py").run()
    assert not at.exception, at.exception
    return at


def _frame(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The table that has this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_enforced_budgets_show_denials_and_the_subjects_closest_to_their_limit(app_db: str) -> None:
    at = _page()
    enforced = _frame(at, "denied this period")
    assert list(enforced["budget"]) == ["free-tier", "org-cap"]
    assert list(enforced["denied this period"]) == [3, 0]
    subjects = _frame(at, "user")
    assert len(subjects) == 10  # the top 10 of 40, never every user
    assert list(subjects["user"][:3]) == ["u-39", "u-38", "u-37"]
    assert list(subjects["left"][:2]) == ["$0.05", "$0.10"]
    assert list(subjects["denied"][:3]) == [2, 1, 0]
    box = next(t for t in at.text_input if t.label == "Find a user")
    box.input("u-0").run()
    assert not at.exception
    found = _frame(at, "user")
    assert list(found["user"]) == [f"u-0{i}" for i in range(9, -1, -1)]
