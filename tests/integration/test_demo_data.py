"""Issue 19, point 12: demo data is the admin's, loaded once whatever the clicks, marked, and removable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from core.recording.calls import make_call, record_batch
from core.recording.demo import load_demo
from core.recording.rollups import check_rollups
from core.storage.tables import UsageRecord

APP = str(Path(__file__).resolve().parents[2] / "app.py")
ROWS = 600


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def test_concurrent_loads_store_the_demo_once_and_remove_keeps_real_calls(engine: Engine) -> None:
    real = make_call("openai", "gpt-4o", 10, 1, request_id="real-1", timestamp=datetime.now(UTC) - timedelta(hours=1))
    record_batch(engine, [real])
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def click() -> None:
        start.wait()
        try:
            load_demo(engine, days=7, rows=ROWS, batch_size=200)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert stored(engine) == ROWS + 1  # three clicks at once: the demo once
    assert load_demo(engine, days=7, rows=ROWS).recorded == 0  # and again later: nothing new
    from core.recording.demo import remove_demo

    assert remove_demo(engine) == ROWS
    with engine.connect() as conn:
        assert conn.execute(select(UsageRecord.request_id)).scalars().all() == ["real-1"]
    assert check_rollups(engine).matches


def test_the_cli_removes_the_demo(engine: Engine, db_url: str, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from core.cli.main import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["demo", "--days", "3", "--rows", "50"]) == 0
    assert main(["demo", "--remove"]) == 0
    assert "removed 50 demo calls" in capsys.readouterr().out
    assert stored(engine) == 0


def test_a_viewer_cannot_load_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    assert not [b for b in at.button if b.key == "load_demo"]
    assert any("An admin can load demo data here (20,000 calls" in c.value for c in at.caption)
