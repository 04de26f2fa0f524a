"""The Reconciliation page through AppTest: how to fetch (command, or a button with a key), billed against
computed per day with drift first, a day opened by model with tokens side by side, the coverage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from admin_api_stub import AdminApiStub, openai_cost, openai_usage
from streamlit.testing.v1 import AppTest

from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TODAY = datetime.now(UTC).date()
DAY_A, DAY_B = TODAY - timedelta(days=3), TODAY - timedelta(days=2)


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    for name in ("OPENAI_ADMIN_KEY", "OPENAI_ADMIN_BASE_URL", "ANTHROPIC_ADMIN_KEY", "ANTHROPIC_ADMIN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    engine = make_engine(url)
    upgrade_database(engine)
    initialize_default_pricing(engine)
    at = lambda day: (datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)).isoformat()  # noqa: E731
    record_batch(
        engine,
        [
            make_call("openai", "gpt-4o", 0, 1_000_000, timestamp=at(DAY_A)),  # $10.00, billed $10.00
            make_call("openai", "gpt-4o-mini", 0, 1_000_000, timestamp=at(DAY_B)),  # $0.60, billed $6.60
        ],
    )
    engine.dispose()
    return url


def stub() -> AdminApiStub:
    return AdminApiStub(
        openai_costs={
            DAY_A: [openai_cost("gpt-4o-2024-08-06, output", "10.00")],
            DAY_B: [openai_cost("gpt-4o-mini-2024-07-18, output", "6.60")],
        },
        openai_usage={
            DAY_A: [openai_usage("gpt-4o-2024-08-06", 0, 1_000_000)],
            DAY_B: [openai_usage("gpt-4o-mini-2024-07-18", 0, 11_000_000)],
        },
    )


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/reconciliation.py").run()
    assert not at.exception, at.exception
    return at


def _everything(at: AppTest) -> str:
    """Every text the page shows, widgets' labels included."""
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.info]
    parts += [e.value for e in at.success] + [e.value for e in at.error] + [e.value for e in at.code]
    parts += [b.label for b in at.button] + [m.value for m in at.metric] + [m.label for m in at.metric]
    parts += [json.dumps(t.value.astype(str).to_dict()) for t in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_without_a_bill_the_page_says_how_to_fetch(app_db: str) -> None:
    at = _page()
    commands = [c.value for c in at.code]
    since = (TODAY - timedelta(days=30)).isoformat()
    assert f"python -m core reconcile fetch --provider openai --since {since}" in commands
    assert f"python -m core reconcile fetch --provider anthropic --since {since}" in commands
    assert not [b for b in at.button if b.label.startswith("Fetch")]  # no key, no button
    # calls logged and no bill: the days are there as no_report
    assert at.dataframe[0].value["status"].tolist() == ["no report: day not fetched"] * 2


def test_with_a_key_a_button_fetches_and_the_page_shows_the_figures(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stub() as server:
        monkeypatch.setenv("OPENAI_ADMIN_KEY", server.openai_key)
        monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", server.openai_url)
        at = _page()
        (button,) = [b for b in at.button if b.label == "Fetch the last 31 days from OpenAI"]
        button.click().run()
        assert not at.exception, at.exception
        assert server.requests, "the button fetched nothing"
    assert server.openai_key not in _everything(at)  # the key is never shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Billed"] == "$16.60" and metrics["Computed"] == "$10.60"
    assert metrics["Coverage"] == "63.9%"  # ($10.00 + $0.60) of $16.60 explained by logged calls
    assert metrics["Days out of tolerance"] == "1"
    days = at.dataframe[0].value
    assert days["day"].tolist() == [DAY_B.isoformat(), DAY_A.isoformat()]  # out of tolerance first
    assert days["status"].tolist()[0].startswith("under")
    assert "fewer tokens logged than billed" in days["likely cause"].tolist()[0]
    # the drifting day is the one opened first, by model, tokens side by side
    (pick,) = [s for s in at.selectbox if s.label == "Day (UTC)"]
    assert pick.value == DAY_B
    models = at.dataframe[1].value
    assert models["model"].tolist() == ["gpt-4o-mini"]  # the dated id billed meets the alias logged
    assert models["billed output tokens"].tolist() == ["11,000,000"]
    assert models["logged output tokens"].tolist() == ["1,000,000"]
    pick.set_value(DAY_A).run()
    models = at.dataframe[1].value
    assert models[["model", "billed", "computed", "status"]].values.tolist() == [
        ["gpt-4o", "$10.00", "$10.00", "match"]
    ]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["billed (provider)", "computed (logged calls)", "out of tolerance"]


def test_a_refused_key_is_shown_in_one_line_and_nothing_is_stored(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with stub() as server:
        monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-wrong")
        monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", server.openai_url)
        at = _page()
        [b for b in at.button if b.label.startswith("Fetch the last")][0].click().run()
    (error,) = at.error
    assert error.value.startswith("Nothing stored: openai: key refused (HTTP 401")
    assert "sk-admin-wrong" not in _everything(at)
    assert at.dataframe[0].value["status"].tolist() == ["no report: day not fetched"] * 2
