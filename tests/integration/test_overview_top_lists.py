"""The Overview's top lists show what they say, how many there are, and what the rest adds up to (issue 22, 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from overview_tabs import open_tab
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_top_users_and_models_say_how_many_and_what_the_rest_adds_up_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    moment = datetime.now(UTC) - timedelta(hours=1)
    # 60 users, user i spends i dollars (i million input tokens at $1 / 1M); 20 models
    calls = [
        make_call("huggingface", f"model-{i % 20}", i * 1_000_000, 0, user=f"u{i:02d}", timestamp=moment,
                  request_id=f"r{i}")
        for i in range(1, 61)
    ]  # fmt: skip
    engine = make_engine(url)
    record_batch(engine, calls)
    engine.dispose()
    st.cache_data.clear()
    at.run()
    assert not at.exception
    open_tab(at, "Models")
    tables = {t.value.columns[0]: t.value for t in at.dataframe}
    assert len(tables["Model"]) == 20  # was 10, under "Top" of 50
    assert "All 20 models." in [c.value for c in at.caption]
    open_tab(at, "Users")
    tables = {t.value.columns[0]: t.value for t in at.dataframe}
    assert len(tables["User"]) == 50
    captions = [c.value for c in at.caption]
    # the 10 smallest users (1..10 dollars) are the rest: $55 of $1,830
    rest = next(c for c in captions if c.startswith("The top 50 of more than 50 users"))
    assert "the rest add up to $55.00 (3.0% of the total)" in rest
    shares = sum(Decimal(s.rstrip("%")) for s in tables["User"]["Share"])
    assert abs(shares + Decimal("3.0") - 100) <= Decimal("0.5")  # the rows and the rest make the whole
