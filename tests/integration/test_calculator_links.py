"""A logged call opens in the Calculator's verification, and the Calculator prices at a past time (issue 22, 17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    assert main(["init"]) == 0
    return url


def _page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_a_usage_log_row_links_to_its_verification(app_db: str) -> None:
    engine = make_engine(app_db)
    logged = record_usage(
        engine, make_call("huggingface", "m", 1000, 500, timestamp=datetime.now(UTC) - timedelta(hours=1))
    )
    engine.dispose()
    st.cache_data.clear()
    logs = _page("app_pages/logs.py")
    table = logs.dataframe[-1].value
    assert list(table["Verify"]) == [f"calculator?verify={logged.id}"]
    calculator = _page("app_pages/calculator.py", verify=str(logged.id))
    assert calculator.success and "The stored cost $0.0025 is right" in calculator.success[0].value
    assert list(calculator.dataframe[-1].value["Cost"]) == ["$0.0025", "$0.0025", "$0.0025"]


def test_the_calculator_prices_at_a_past_time(app_db: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.jsonl"
    rows = [
        {"provider": "acme", "model": "m1", "input_token_cost": "0.000001", "output_token_cost": "0.000002"},
        {"provider": "acme", "model": "m1", "input_token_cost": "0.000010", "output_token_cost": "0.000020",
         "effective_from": "2026-11-01T00:00:00Z"},
    ]  # fmt: skip
    prices.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["prices", "import", str(prices)]) == 0
    at = _page("app_pages/calculator.py")
    at.text_input(key="calc_model").set_value("m1")
    at.selectbox(key="calc_provider").set_value("acme").run()
    assert at.metric[0].value == "$0.02"  # 1000 in, 500 out at today's prices
    at.text_input(key="calc_at").set_value("2026-10-15T12:00").run()
    assert at.metric[0].value == "$0.002"  # the version in force then
    at.text_input(key="calc_at").set_value("yesterday").run()
    assert at.error and "Prices in force at" in at.error[0].value and not at.metric
