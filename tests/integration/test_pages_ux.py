"""Page behaviour a new user trips on (issue 14): calculator input, usage-log counts and filters, display rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from overview_tabs import open_counts
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "pw")
    return url


def _app(page: str | None = None, period: str = "Last 30 days") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = period
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _fill(url: str) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC) - timedelta(hours=1)
    calls = [
        make_call("groq", "llama-3.1-8b-instant", 10, 10, user="u1", timestamp=now - timedelta(minutes=i))
        for i in range(7)
    ]
    calls += [
        make_call("openai", "gpt-4o", 2000, 300, user="u2", timestamp=now - timedelta(days=1, minutes=i))
        for i in range(3)
    ]
    calls += [make_call("openai", "gpt-4o-mini", 100, 30, user="u2", timestamp=now - timedelta(days=2))]
    record_batch(engine, calls)
    engine.dispose()
    st.cache_data.clear()


# --- calculator -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "typed", "why"),
    [("calc_in", "1e3", "'1e3' is not a whole number"), ("calc_out", "-5", "-5 is negative"), ("calc_in", "", "''")],
)
def test_an_invalid_entry_shows_no_cost_but_says_what_is_wrong(app_db: str, field: str, typed: str, why: str) -> None:
    at = _app("app_pages/calculator.py")
    assert at.metric[0].value == "$0.0025"
    at.text_input(key=field).set_value(typed).run()
    assert not at.exception
    assert not at.metric, "the last valid cost must not stay on screen"
    assert at.error and "Invalid input" in at.error[0].value and why in at.error[0].value
    label = {"calc_in": "Input tokens", "calc_out": "Output tokens"}[field]
    assert label in at.error[0].value


def test_1e3_is_not_taken_as_one_and_errors_use_the_labels(app_db: str) -> None:
    at = _app("app_pages/calculator.py")
    at.text_input(key="calc_in").set_value("2000").run()
    assert at.metric[0].value == "$0.0035"  # 2000 * 1e-6 + 500 * 3e-6
    at.text_input(key="calc_cached").set_value("5000").run()
    assert not at.metric and at.error
    message = at.error[0].value
    assert "Cached input tokens" in message and "cached_input_tokens" not in message


# --- usage logs -------------------------------------------------------------------------------------------


def test_usage_logs_show_the_count_of_matching_calls(app_db: str) -> None:
    _app()
    _fill(app_db)
    at = _app("app_pages/logs.py")
    assert any("11 calls match" in c.value for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="logs_provider").set_value("openai").run()
    assert any("4 calls match" in c.value for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="logs_model").set_value("gpt-4o").run()
    assert any("3 calls match" in c.value for c in at.caption)
    at.selectbox(key="logs_user").set_value("u2").run()
    assert any("3 calls match" in c.value for c in at.caption)


def test_the_model_filter_lists_only_the_chosen_providers_models(app_db: str) -> None:
    _app()
    _fill(app_db)
    at = _app("app_pages/logs.py")
    assert set(at.selectbox(key="logs_model").options) >= {"gpt-4o", "gpt-4o-mini", "llama-3.1-8b-instant"}
    at.selectbox(key="logs_provider").set_value("openai").run()
    assert at.selectbox(key="logs_model").options == ["All", "gpt-4o", "gpt-4o-mini"]
    at.selectbox(key="logs_model").set_value("gpt-4o-mini").run()
    at.selectbox(key="logs_provider").set_value("groq").run()  # the model no longer fits: back to All
    assert not at.exception
    assert at.selectbox(key="logs_model").value == "All"
    assert at.selectbox(key="logs_model").options == ["All", "llama-3.1-8b-instant"]


def test_count_calls_and_models_of_on_every_backend(engine) -> None:  # type: ignore[no-untyped-def]
    from core.reporting.filters import count_calls, models_of
    from core.reporting.logs import LogFilter

    now = datetime.now(UTC).replace(microsecond=0)
    record_batch(
        engine,
        [make_call("groq", "llama-3.1-8b-instant", 10, 10, timestamp=now - timedelta(hours=i)) for i in range(5)]
        + [make_call("nobody", "b", 10, 10, user="x", timestamp=now - timedelta(days=3))],
    )
    start, end = now - timedelta(days=10), now + timedelta(days=1)
    assert count_calls(engine, LogFilter(start=start, end=end)).calls == 6
    assert count_calls(engine, LogFilter(start=start, end=end, provider="groq")).calls == 5
    assert count_calls(engine, LogFilter(start=start, end=end, user="x")).calls == 1
    assert count_calls(engine, LogFilter(start=start, end=end, matched_by="estimate")).calls == 1
    assert count_calls(engine, LogFilter(start=start, end=end, matched_by="exact", provider="nobody")).calls == 0
    assert models_of(engine, start, end) == ["b", "llama-3.1-8b-instant"]
    assert models_of(engine, start, end, "groq") == ["llama-3.1-8b-instant"]


# --- display ------------------------------------------------------------------------------------------------


def test_a_money_column_uses_one_rule_and_keeps_the_exact_value(app_db: str) -> None:
    _app()
    engine = make_engine(app_db)
    now = datetime.now(UTC) - timedelta(hours=1)
    # gpt-4o at $2.50 / $10 per 1M: 6,000,000 in + 200,000 out = $17.00; and a small odd one
    record_batch(
        engine,
        [
            make_call("openai", "gpt-4o", 6_000_000, 200_000, timestamp=now),
            make_call("openai", "gpt-4o", 171_731, 0, timestamp=now),  # $0.4293275
        ],
    )
    engine.dispose()
    st.cache_data.clear()
    at = _app("app_pages/logs.py")
    table = at.dataframe[0].value
    assert list(table["Cost"]) == ["$17.00", "$0.43"] or sorted(table["Cost"]) == ["$0.43", "$17.00"]
    assert "0.4293275" in list(table["Exact cost (USD)"])


def test_all_time_shows_no_comparison_with_a_previous_period(app_db: str) -> None:
    _app()
    _fill(app_db)
    at = open_counts(_app(period="All time"))
    labels = [m.label for m in at.metric]
    assert "Previous period spend" not in labels
    spend = at.metric[0]
    assert not spend.delta and "previous period" not in (spend.help or "")
    at = open_counts(_app(period="Last 30 days"))
    assert "Previous period spend" in [m.label for m in at.metric]


def test_month_bars_are_labelled_as_months_and_the_provider_table_is_full_width(app_db: str) -> None:
    from spend_chart import drawn_chart

    _app()
    _fill(app_db)
    at = _app(period="This month")
    at.segmented_control(key="granularity").set_value("month").run()
    assert not at.exception
    chart = drawn_chart(at)
    today = datetime.now(UTC)
    xs = {column.label for column in chart.columns}  # periods in words, not instants
    assert xs <= {f"{today:%b %Y}", f"{(today - timedelta(days=3)):%b %Y}"}, xs
    assert all(bar.startswith(f"{column.label} · ") for column in chart.columns for bar in column.bars)
    in_columns = [df for column in at.columns for df in column.dataframe]
    providers = [df for df in at.dataframe if "Provider" in df.value.columns]
    assert providers and not [df for df in in_columns if "Provider" in df.value.columns]
