"""Usage logs: "(no user)" and "(no project)" pick the calls without one, in the table, the count and the CSV
(issue 22, point 3): one filter model for the Overview and the Usage logs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.reporting.aggregates import NO_PROJECT, NO_USER
from core.reporting.filters import count_calls
from core.reporting.logs import LogFilter, export_query, fetch_page, filter_from_query, write_csv
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _calls() -> list:  # type: ignore[type-arg]
    return [
        make_call("openai", "gpt-4o", 10, 5, user="alice", project="web", timestamp=NOW, request_id="a"),
        make_call("openai", "gpt-4o", 10, 5, user=None, project="web", timestamp=NOW, request_id="b"),
        make_call("openai", "gpt-4o", 10, 5, user=None, project=None, timestamp=NOW, request_id="c"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"), [("user", NO_USER, {"b", "c"}), ("project", NO_PROJECT, {"c"})]
)
def test_no_user_and_no_project_filter_the_table_the_count_and_the_csv(
    engine: Engine, field: str, value: str, expected: set[str]
) -> None:
    record_batch(engine, _calls())
    flt = LogFilter(start=NOW - timedelta(days=1), end=NOW + timedelta(days=1), **{field: value})
    assert {r.request_id for r in fetch_page(engine, flt).rows} == expected
    assert count_calls(engine, flt).calls == len(expected)
    linked = filter_from_query(dict(parse_qsl(export_query(flt))))  # the page's CSV link, read back by the route
    assert getattr(linked, field) == value
    out = io.StringIO()
    write_csv(engine, linked, out)
    assert out.getvalue().count("\n") - 1 == len(expected)


def test_the_usage_logs_page_shows_only_calls_without_a_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    engine = make_engine(url)
    record_batch(engine, _calls())
    engine.dispose()
    st.cache_data.clear()
    at.switch_page("app_pages/logs.py").run()
    at.selectbox(key="logs_user").set_value(NO_USER).run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert len(table) == 2 and set(table["User"]) == {""}
