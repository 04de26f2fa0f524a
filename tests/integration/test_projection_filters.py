"""The month-end projection counts the calls the Overview's filters pick (issue 22, point 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.reporting.forecast import month_end_projection
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _month_calls() -> list:  # type: ignore[type-arg]
    now = datetime.now(UTC)
    moment = max(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now - timedelta(hours=2))
    return [
        # 1,000,000 input tokens at the HuggingFace default: $1 for alice, $60 for everyone else
        make_call("huggingface", "m", 1_000_000, 0, user="alice", timestamp=moment, request_id="a"),
        make_call("huggingface", "m", 60_000_000, 0, user="bob", timestamp=moment, request_id="b"),
    ]


def test_the_projection_reads_the_filtered_calls(engine: Engine) -> None:
    record_batch(engine, _month_calls())
    now = datetime.now(UTC)
    everyone = month_end_projection(engine, now, ZoneInfo("UTC"))
    alice = month_end_projection(engine, now, ZoneInfo("UTC"), {"user": "alice"})
    assert everyone.spent_so_far == Decimal(61) and alice.spent_so_far == Decimal(1)
    assert alice.projected < everyone.projected


def test_the_overview_projection_follows_its_user_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    engine = make_engine(url)
    record_batch(engine, _month_calls())
    engine.dispose()
    st.cache_data.clear()
    at.run()
    at.selectbox(key="overview_user").set_value("alice").run()
    assert not at.exception
    (projection,) = [m for m in at.metric if m.label == "Month-end projection"]
    assert "This month so far: $1.00" in (projection.help or "")  # was $61.00: every user's spend
