"""Every page through AppTest, on an empty and on a filled database (SQLite in tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from overview_tabs import open_tab
from spend_chart import drawn_chart
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch, record_usage
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["app_pages/overview.py", "app_pages/logs.py", "app_pages/pricing.py", "app_pages/calculator.py"]
PASSWORD = "correct horse battery staple"
XSS_MODEL = "**bold** <img src=x onerror=alert(1)>"


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
    return url


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = "Last 30 days"
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _fill(url: str) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC) - timedelta(hours=1)
    calls = [
        make_call(
            "huggingface", "openai/gpt-oss-120b:groq", 1000, 500, user="alice", request_id="req-1", timestamp=now
        ),
        make_call("openai", "gpt-4o", 2000, 300, user="bob", timestamp=now - timedelta(days=2)),
        make_call("nobody", "unknown-model", 100, 100, timestamp=now - timedelta(days=3)),
    ]
    record_batch(engine, calls)
    engine.dispose()
    st.cache_data.clear()  # what the app does after its own writes; outside writes show within the TTL


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.text] + [str(e.value) for e in at.code]
    parts += [e.value for e in at.caption] + [e.value for e in at.info] + [e.value for e in at.success]
    parts += [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_database(app_db: str, page: str) -> None:
    at = _app(page)
    assert not at.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_filled_database(app_db: str, page: str) -> None:
    _app()  # first run creates tables and prices
    _fill(app_db)
    at = _app(page)
    assert not at.exception


def test_overview_offers_demo_data_only_when_empty(app_db: str) -> None:
    at = _app()
    assert not [b for b in at.button if b.key == "load_demo"]  # the admin's, after signing in
    at.text_input(key="admin_password").set_value(PASSWORD)
    at.button(key="FormSubmitter:demo_sign_in-Sign in").click().run()
    assert [b for b in at.button if b.key == "load_demo"]
    _fill(app_db)
    at.run()
    assert not [b for b in at.button if b.key == "load_demo"]
    assert at.metric[0].label == "Total spend"
    # 0.0025 (huggingface) + 2000*2.5e-6 + 300*10e-6 (gpt-4o) + 200 * 1e-6 (estimate)
    assert at.metric[0].value == "$0.01"  # whole cents from a cent up; the exact sum on hover
    assert "Exact: $0.0107" in at.metric[0].help
    assert "1 call had no price; shown at the $1/1M estimate" in _texts(at)


def test_calculator_shows_the_seed_example(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    assert at.selectbox(key="calc_provider").value == "huggingface"
    assert at.text_input(key="calc_model").value == "openai/gpt-oss-120b:groq"
    assert at.text_input(key="calc_in").value == "1000"
    assert at.metric[0].value == "$0.0025"
    formula = at.code[0].value
    assert "cost_input = 1000 * 0.000001 = $0.001" in formula
    assert "cost_output = 500 * 0.000003 = $0.0015" in formula
    assert "cost_total = $0.0025" in formula
    assert at.metric[1].value == "exact"


def test_pricing_form_refuses_bad_value_and_wrong_password_then_saves(app_db: str) -> None:
    at = _app("app_pages/pricing.py")
    assert not at.text_input(key="admin_password").proto.default  # no prefilled secret
    at.text_input(key="admin_password").set_value("not the password")
    at.form_submit_button[0].click().run()
    assert at.error and "Wrong password" in at.error[0].value
    assert "not the password" not in _texts(at)
    assert not [b for b in at.button if b.key == "sign_out"]

    at.text_input(key="admin_password").set_value(PASSWORD)
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert PASSWORD not in _texts(at)
    choice = "huggingface / openai/gpt-oss-120b:groq"
    at.selectbox(key="edit_choice").set_value(choice).run()
    k = f"{choice}|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("-1").run()
    at.button(key=f"save_{k}").click().run()
    assert at.error and "Input per 1M tokens (USD)" in at.error[0].value and "'-1'" in at.error[0].value

    at.text_input(key=f"input_per_1m_{k}").set_value("2")
    at.text_input(key=f"output_per_1m_{k}").set_value("4")
    at.text_input(key=f"note_{k}").set_value("test raise")
    at.button(key=f"save_{k}").click().run()
    assert not at.error, at.error
    assert at.success and "Saved as price version" in at.success[0].value

    at.switch_page("app_pages/calculator.py").run()
    assert at.metric[0].value == "$0.004"  # 1000 * 2e-6 + 500 * 4e-6
    assert "cost_input = 1000 * 0.000002 = $0.002" in at.code[0].value


def test_verify_finds_a_logged_call(app_db: str) -> None:
    _app()
    _fill(app_db)
    at = _app("app_pages/calculator.py")
    at.text_input(key="verify_id").set_value("req-1")
    [b for b in at.form_submit_button if b.label == "Verify"][0].click().run()
    assert not at.exception
    assert at.success and "The stored cost $0.0025 is right" in at.success[0].value
    table = at.dataframe[-1].value
    assert list(table["Cost"]) == ["$0.0025", "$0.0025", "$0.0025"]

    at.text_input(key="verify_id").set_value("999999")
    [b for b in at.form_submit_button if b.label == "Verify"][0].click().run()
    assert at.error and "No such call: no logged call" in at.error[0].value


def test_names_from_data_render_as_literal_text(app_db: str) -> None:
    _app()
    engine = make_engine(app_db)
    record_usage(engine, make_call("acme", XSS_MODEL, 10, 10, user="<b>eve</b>", request_id="x-1"))
    engine.dispose()
    st.cache_data.clear()
    for page in ("app_pages/overview.py", "app_pages/logs.py"):
        at = _app(page)
        if page == "app_pages/overview.py":
            open_tab(at, "Models")
        shown = [str(v) for df in at.dataframe for col in df.value.columns for v in df.value[col]]
        assert XSS_MODEL in shown, page
        markdown = "\n".join(m.value for m in at.markdown)
        assert "<img" not in markdown and "**bold**" not in markdown
        if page == "app_pages/overview.py":
            at.segmented_control(key="stack_by").set_value("model").run()  # the chart's legend and hovers name it
            html = "\n".join(h.proto.body for h in at.html)
            assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
            assert XSS_MODEL in drawn_chart(at).legend
    at = _app("app_pages/calculator.py")
    at.selectbox(key="calc_provider").set_value("groq").run()
    at.text_input(key="calc_model").set_value(XSS_MODEL).run()
    assert not at.exception
    assert any(XSS_MODEL in t.value for t in at.text)  # st.text: shown as typed
    assert "<img" not in "\n".join(m.value for m in at.markdown)


def test_usage_logs_pages_by_keyset_and_filters(app_db: str) -> None:
    _app()
    engine = make_engine(app_db)
    now = datetime.now(UTC) - timedelta(hours=2)
    record_batch(engine, [make_call("groq", "m", 10, 10, timestamp=now - timedelta(minutes=i)) for i in range(60)])
    engine.dispose()
    st.cache_data.clear()
    at = _app("app_pages/logs.py")
    assert len(at.dataframe[0].value) == 50
    first_ids = list(at.dataframe[0].value["Log id"])
    at.button(key="logs_next").click().run()
    second = list(at.dataframe[0].value["Log id"])
    assert len(second) == 10 and not set(second) & set(first_ids)
    at.button(key="logs_prev").click().run()
    assert list(at.dataframe[0].value["Log id"]) == first_ids
    at.selectbox(key="logs_matched_by").set_value("estimate").run()
    assert set(at.dataframe[0].value["Matched by"]) == {"estimate"}


def test_a_bad_setting_is_shown_not_raised(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "lots")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "HUGGINGFACE_INPUT_TOKEN_COST" in at.error[0].value and "'lots'" in at.error[0].value
