"""SQLite's WAL is checkpointed by the server's thread, not by the commit that crosses 1,000 pages.

Without it, every 40th reserve of a check with 21 enforced budgets paid 4-13 ms for the copy and
fsync; with it, the request's commit only appends, and the WAL still stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from core.storage import checkpoint
from core.storage.checkpoint import start_checkpointer, stop_checkpointer
from core.storage.engine import make_engine

ROW = "x" * 3000  # about one 4 KiB page a row


def _write(engine: Engine, commits: int) -> int:
    """``commits`` small transactions; the largest the -wal file got."""
    wal = Path(str(engine.url.database) + "-wal")
    largest = 0
    for i in range(commits):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO filler (body) VALUES (:b)"), [{"b": f"{i}{ROW}"} for _ in range(4)])
        largest = max(largest, os.path.getsize(wal))
    return largest


def _engine(tmp_path: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)"))
    return engine


def test_the_server_checkpoints_in_the_background_and_commits_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "WAL_KEEP_BYTES", 8 * 1024 * 1024)  # the 64 MB cap, scaled to the test
    engine = _engine(tmp_path, "served.db")
    try:
        assert start_checkpointer(engine, interval=0.02) is not None
        assert start_checkpointer(engine, interval=0.02) is start_checkpointer(engine)  # once per database
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        largest = _write(engine, 3000)  # ~48 MB through the WAL, written without a pause
        assert largest < 16 * 1024 * 1024, f"the WAL grew to {largest:,} bytes: nobody checkpointed it"
    finally:
        stop_checkpointer(engine)
        engine.dispose()


def test_without_a_server_sqlite_checkpoints_on_commit_as_it_always_did(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "plain.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
    assert _write(engine, 1500) < 12 * 1024 * 1024
    engine.dispose()


def test_postgresql_and_memory_databases_have_no_checkpointer() -> None:
    assert start_checkpointer(make_engine("sqlite://")) is None
