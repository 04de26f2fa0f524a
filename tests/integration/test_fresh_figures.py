"""A call recorded elsewhere (over HTTP, another process) shows on the next reload, not 30 s later (issue 22, 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _total(at: AppTest) -> str:
    (total,) = [m.value for m in at.metric if m.label == "Total spend"]
    return str(total)


def test_a_reload_shows_calls_recorded_since(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = make_engine(url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    moment = datetime.now(UTC) - timedelta(hours=1)
    record_batch(engine, [make_call("huggingface", "m", 1_000_000, 0, timestamp=moment, request_id="a")])
    at.run()
    assert _total(at) == "$1.00"
    # another sender records a call; nobody clears the page's caches
    record_batch(engine, [make_call("huggingface", "m", 2_000_000, 0, timestamp=moment, request_id="b")])
    at.run()
    assert _total(at) == "$3.00"  # was $1.00 for up to 30 s
    at.switch_page("app_pages/logs.py").run()
    caption = " ".join(c.value for c in at.caption)
    assert "2 calls match" in caption and len(at.dataframe[-1].value) == 2  # the count agrees with the rows
    engine.dispose()
