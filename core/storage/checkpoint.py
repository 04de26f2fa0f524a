"""SQLite: the WAL checkpointed by a background thread of the server, not by the commit that crosses the mark.

In WAL mode a commit only appends pages to the ``-wal`` file; by default the commit that takes the
file past 1,000 pages also copies them into the database and fsyncs it, on the request's own time:
4-13 ms on every 40th reserve of a check with 21 enforced budgets (its p99 9.4 ms; 3.3 ms without).
A server process (the dashboard, ``python -m core serve``, ``track(enforce=True)``) turns that off for
its own connections and checkpoints here instead, PASSIVE (never waits on readers or writers), when
the file has grown past the same mark; past 64 MB (writers that never pause, so the copy is never
whole and the file never reused) it waits for the writers once and truncates the file. Other
processes (imports, the CLI) keep SQLite's default, so the WAL stays bounded when no server runs.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Engine, event

from core.storage.background import OncePerDatabase
from core.storage.engine import sqlite_path

log = logging.getLogger(__name__)
CHECK_SECONDS = 0.5
WAL_BYTES = 1000 * 4096  # SQLite's own mark: 1,000 pages of 4 KiB
WAL_KEEP_BYTES = 64 * 1024 * 1024  # past this, the WAL is truncated (and a larger file cut back to it)
_CHECKPOINT = {"PASSIVE": "PRAGMA wal_checkpoint(PASSIVE)", "TRUNCATE": "PRAGMA wal_checkpoint(TRUNCATE)"}


def _defer(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint = 0")
    cursor.execute("PRAGMA journal_size_limit = 67108864")  # WAL_KEEP_BYTES
    cursor.close()


def checkpoint(engine: Engine, mode: str = "PASSIVE") -> tuple[int, int, int]:
    """One checkpoint: (busy, pages in the WAL, pages copied), as SQLite reports them."""
    if mode not in _CHECKPOINT:
        raise ValueError(f"mode: {mode!r} is not PASSIVE or TRUNCATE")
    raw = engine.raw_connection()
    try:
        row = raw.driver_connection.execute(_CHECKPOINT[mode]).fetchone()  # type: ignore[union-attr]
    finally:
        raw.close()
    return int(row[0]), int(row[1]), int(row[2])


def _loop(engine: Engine, stop: threading.Event, interval: float) -> None:
    wal = f"{sqlite_path(str(engine.url))}-wal"
    while not stop.wait(interval):
        try:
            size = os.path.getsize(wal)
            if size > WAL_KEEP_BYTES:
                # Writers that never pause leave no moment when the WAL is wholly copied, so it is never
                # reused and only grows: copy what is left, waiting for the writers, and truncate it.
                checkpoint(engine, "TRUNCATE")
            elif size > WAL_BYTES:
                checkpoint(engine)
        except FileNotFoundError:
            continue  # no WAL yet (or the database was removed)
        except Exception as exc:  # noqa: BLE001 - the thread must outlive a hiccup; SQLite retries next time
            log.warning("WAL checkpoint failed, trying again: %s", exc)


_threads = OncePerDatabase("spendboard-checkpoint", _loop)


def start_checkpointer(engine: Engine, interval: float = CHECK_SECONDS) -> threading.Thread | None:
    """SQLite only, once per process and database: this engine's connections stop checkpointing on commit,
    and a daemon thread checkpoints when the WAL passes 1,000 pages. ``None`` for PostgreSQL or memory."""
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is None:
        return None

    def defer() -> None:
        if not event.contains(engine, "connect", _defer):
            event.listen(engine, "connect", _defer)
            engine.dispose()  # the pooled connections were made before: new ones take the pragmas

    return _threads.start(engine, interval, before=defer)


def stop_checkpointer(engine: Engine, timeout: float = 5.0) -> None:
    _threads.stop(engine, timeout)


def stop_all_checkpointers(timeout: float = 5.0) -> None:
    _threads.stop_all(timeout)
