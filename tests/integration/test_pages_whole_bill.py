"""Pages show the whole bill (issue 9): the calculator takes every field and a pasted usage block and writes
every line of the formula; the usage log shows the new fields and filters by project; the Overview shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from overview_tabs import open_counts, open_tab
from streamlit.testing.v1 import AppTest

from core.pricing.edits import PriceEdit, save_price
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
ANTHROPIC_USAGE = {
    "input_tokens": 3,
    "cache_read_input_tokens": 1111,
    "cache_creation_input_tokens": 418,
    "output_tokens": 100,
}


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "pw")
    st.cache_data.clear()
    return url


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = "Last 30 days"
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_a_pasted_anthropic_usage_block_fills_every_field_and_the_formula_shows_each_line(app_db: str) -> None:
    _app()  # the app sets the database up
    engine = make_engine(app_db)
    edit = PriceEdit("anthropic", "claude-test", "3", "15", cached_input_per_1m="0.30", cache_write_per_1m="3.75")
    assert save_price(engine, edit) is not None
    engine.dispose()
    at = _app("app_pages/calculator.py")
    at.selectbox(key="calc_provider").set_value("anthropic").run()
    at.text_input(key="calc_model").set_value("claude-test").run()
    at.text_area(key="calc_usage_text").set_value(json.dumps(ANTHROPIC_USAGE)).run()
    at.button(key="calc_use_usage").click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="calc_in").value == "1532"
    assert at.text_input(key="calc_cached").value == "1111"
    assert at.text_input(key="calc_write").value == "418"
    code = at.code[0].value
    assert "cache_write = 418 * 0.00000375 = $0.0015675" in code
    assert "cache_read = 1111 * 0.0000003 = $0.0003333" in code
    assert at.metric[0].value == "$0.0034098"


def test_a_bad_usage_block_is_named_and_changes_nothing(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    at.text_area(key="calc_usage_text").set_value('{"prompt_tokens": -4, "completion_tokens": 1}').run()
    at.button(key="calc_use_usage").click().run()
    assert any("prompt_tokens: -4 is negative" in e.value for e in at.error)
    assert at.text_input(key="calc_in").value == "1000"
    assert at.metric[0].value == "$0.0025"  # the seed's example, untouched


def test_reasoning_beyond_output_is_refused_by_its_label(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    at.text_input(key="calc_reasoning").set_value("501").run()
    assert not at.metric
    assert "Reasoning tokens" in at.error[0].value


def test_flex_without_a_flex_price_says_standard_rates_were_used(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    at.selectbox(key="calc_tier").set_value("flex").run()
    assert at.metric[2].value == "standard"
    assert "service tier: flex asked, no such price; standard rates used" in at.code[0].value


def test_usage_logs_show_the_new_fields_and_filter_by_project(app_db: str) -> None:
    engine = make_engine(app_db)
    _app()  # the app sets the database up
    now = datetime.now(UTC) - timedelta(hours=1)
    record_batch(
        engine,
        [
            make_call(
                "openai",
                "gpt-4o",
                1000,
                100,
                200,
                timestamp=now,
                project="alpha",
                reasoning_tokens=40,
                cache_write_tokens=300,
            ),
            make_call("openai", "gpt-4o", 1000, 100, timestamp=now, project="beta"),
            make_call("openai", "gpt-4o", 1000, 100, timestamp=now),
        ],
    )
    engine.dispose()
    st.cache_data.clear()
    at = _app("app_pages/logs.py")
    table = at.dataframe[0].value
    for column in ("Project", "Cache read", "Cache write 5m", "Reasoning", "Service tier"):
        assert column in table.columns
    at.selectbox(key="logs_project").set_value("alpha").run()
    table = at.dataframe[0].value
    assert list(table["Project"]) == ["alpha"]
    assert list(table["Reasoning"]) == [40] and list(table["Cache write 5m"]) == [300]
    assert any("1 call matches" in c.value for c in at.caption)


def test_overview_shows_the_new_counts_and_narrows_to_a_project(app_db: str) -> None:
    _app()
    engine = make_engine(app_db)
    now = datetime.now(UTC) - timedelta(hours=1)
    record_batch(
        engine,
        [
            make_call(
                "openai",
                "gpt-4o",
                1000,
                100,
                timestamp=now,
                project="alpha",
                reasoning_tokens=40,
                cache_write_tokens=300,
                web_search_calls=2,
            ),
            make_call("openai", "gpt-4o", 1000, 100, timestamp=now, project="beta"),
        ],
    )
    engine.dispose()
    st.cache_data.clear()
    at = _app()
    assert "Reasoning tokens" not in [m.label for m in at.metric]  # the counts wait in their expander
    open_counts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls"] == "2"
    assert metrics["Reasoning tokens"] == "40" and metrics["Web searches"] == "2"
    assert metrics["Cache write tokens (5 min)"] == "300"
    open_tab(at, "Projects")
    projects = next(d.value for d in at.dataframe if "Project" in d.value.columns)
    assert set(projects["Project"]) == {"alpha", "beta"}
    at.selectbox(key="overview_project").set_value("beta").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls"] == "1" and metrics["Reasoning tokens"] == "0"


def test_the_calculator_finds_any_catalog_model_by_typing(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    box = at.selectbox(key="calc_suggestion")
    assert len(box.options) > 2000, "the whole genai-prices catalog is offered"
    wanted = next(o for o in box.options if o.startswith("anthropic / claude-sonnet-4-5"))
    box.set_value(wanted).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="calc_provider").value == "anthropic"
    assert at.text_input(key="calc_model").value == wanted.split(" / ", 1)[1]
    assert at.metric[1].value == "exact"


def test_the_pricing_page_searches_thousands_of_prices(app_db: str) -> None:
    at = _app("app_pages/pricing.py")
    total = len(at.dataframe[0].value)
    assert total > 2000
    at.text_input(key="prices_search").set_value("claude sonnet 4-5").run()
    found = at.dataframe[0].value
    assert 0 < len(found) < 50
    assert all("sonnet" in m.lower() for m in found["Model"])
    at.selectbox(key="prices_source").set_value("catalog").run()
    assert all(p == "huggingface" or p in ("mistral", "google", "deepseek") for p in at.dataframe[0].value["Provider"])
