"""The Overview marks anomalies on the spend chart (AppTest): a red marker on the spike's day whose hover
names the key, its spend and its usual spend, and the list of the latest anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from spend_chart import drawn_chart
from streamlit.testing.v1 import AppTest

from core.anomalies import service
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.migrate import create_tables

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def spike_history(url: str) -> datetime:
    """batch-7's usual $2 at one hour for five weeks, $31.40 at that hour two days ago; returns that hour."""
    engine = make_engine(url)
    create_tables(engine)
    spike = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)

    def usd(amount: str, at: datetime, user: str) -> object:
        return make_call("acme", "model-x", int(Decimal(amount) * 1_000_000), 0, user=user, timestamp=at)

    calls = [
        usd(a, spike - timedelta(weeks=5 - i, minutes=-10), "batch-7")
        for i, a in enumerate(["2", "1.9", "2.1", "1.9", "2.1"])
    ]
    calls += [usd("100", spike - timedelta(weeks=w, minutes=-30), "steady") for w in range(6)]
    calls.append(usd("31.40", spike + timedelta(minutes=5), "batch-7"))
    record_batch(engine, calls)  # type: ignore[arg-type]
    service.run_pass(engine)  # what the server's loop does
    engine.dispose()
    st.cache_data.clear()
    return spike


def test_the_overview_marks_the_anomaly_and_lists_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    spike = spike_history(url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = "Last 30 days"
    at.run()
    assert not at.exception, at.exception
    chart = drawn_chart(at)
    (marked,) = [c for c in chart.columns if c.marker]
    assert marked.label == f"{spike:%b} {spike.day}"  # the spike's day (UTC, the app's default zone)
    assert marked.marker_at == pytest.approx(marked.top, abs=0.01) and marked.top > 0  # on top of the day's bar
    hover = marked.marker or ""
    assert "batch-7" in hover and "spent $31.40" in hover and "usually $2.00" in hover and "15.70x" in hover
    frames = [d.value for d in at.dataframe]
    latest = next(f for f in frames if "Usual spend" in f.columns)
    assert ["batch-7", "$31.40", "$2.00", "15.70x"] in latest[["Key", "Spend", "Usual spend", "Ratio"]].values.tolist()


def test_narrowed_to_another_user_the_marker_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    spike_history(url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = "Last 30 days"
    at.run()
    at.selectbox(key="overview_user").set_value("steady").run()
    assert not at.exception, at.exception
    chart = drawn_chart(at)
    assert chart.columns and not [c for c in chart.columns if c.marker]
