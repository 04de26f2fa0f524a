"""Engine and units of work. SQLite by default (WAL, busy timeout); PostgreSQL by URL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError

from core import config
from core.budgets import models as _budget_models  # noqa: F401 - registers the budget tables on Base
from core.models import Base

BUSY_TIMEOUT_MS = 5_000
LOCK_RETRIES = 5

T = TypeVar("T")


class DatabaseBusyError(RuntimeError):
    """SQLite stayed locked by another writer through every retry."""


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``DATABASE_URL``), with SQLite set up for concurrent use."""
    url = url or config.database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is replaced by explicit BEGINs, so that a
    # write unit can take the write lock up front (BEGIN IMMEDIATE) instead of failing
    # to upgrade a read lock half-way (SQLAlchemy's documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("spendboard_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_tables(engine: Engine) -> list[str]:
    """Create missing tables; returns the names created."""
    existing = set(_table_names(engine))
    Base.metadata.create_all(engine)
    return [name for name in Base.metadata.tables if name not in existing]


def _table_names(engine: Engine) -> list[str]:
    from sqlalchemy import inspect

    return inspect(engine).get_table_names()


def _is_lock_error(exc: OperationalError) -> bool:
    message = str(exc.orig).lower() if exc.orig else str(exc).lower()
    return "database is locked" in message or "database table is locked" in message


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one write transaction: commit once or not at all.

    On SQLite the write lock is taken at BEGIN; "database is locked" after the busy
    timeout is retried a bounded number of times, then raised as a clear error.
    """
    for attempt in range(1, LOCK_RETRIES + 1):
        try:
            with engine.connect().execution_options(spendboard_write=True) as conn:
                with conn.begin():
                    return work(conn)
        except OperationalError as exc:
            if not _is_lock_error(exc) or attempt == LOCK_RETRIES:
                if _is_lock_error(exc):
                    raise DatabaseBusyError(
                        f"the database stayed locked by another writer after {LOCK_RETRIES} tries "
                        f"of {BUSY_TIMEOUT_MS} ms; nothing was written"
                    ) from exc
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")
