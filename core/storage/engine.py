"""Engine and units of work. SQLite by default (WAL, busy timeout); PostgreSQL by URL."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from core import config

BUSY_TIMEOUT_MS = 5_000
LOCK_RETRIES = 5

T = TypeVar("T")


class DatabaseBusyError(RuntimeError):
    """SQLite stayed locked by another writer through every retry."""


class DatabaseSchemaError(ValueError):
    """The database's schema is not one this code can use or upgrade; nothing was changed."""


class DatabaseTooNewError(DatabaseSchemaError):
    """The database was migrated by a newer Spendboard than this one."""


# What a bad DATABASE_URL, an unreachable server, a refused login or a missing database raise.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OperationalError, DBAPIError, ArgumentError, NoSuchModuleError)


def database_error(exc: SQLAlchemyError | OSError, url: str | None = None) -> config.ConfigError:
    """One line naming DATABASE_URL (password hidden) and the server's reason, for the CLI and the app."""
    try:
        shown = config.shown_url(url or config.database_url())
    except config.ConfigError as bad:
        return bad
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        reason = str(orig if orig is not None else exc).split("\n(Background on this error")[0]
    else:
        reason = exc.strerror or str(exc)
    reason = "; ".join(part.strip() for part in reason.splitlines() if part.strip())
    return config.ConfigError(f"DATABASE_URL: cannot use {shown} ({reason})")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and _is_lock_error(exc)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for another database, memory or a ``file:`` URI."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``DATABASE_URL``), with SQLite set up for concurrent use."""
    url = url or config.database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                create_private(Path(database))
            except OSError as exc:
                raise database_error(exc, url) from None
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        _binary_lists(engine)
    return engine


def _binary_lists(engine: Engine) -> None:
    """psycopg sends a Python list in PostgreSQL's binary array format, not its text format: a check or a reserve
    passes its keys as arrays (one prepared statement whatever their number), and the text format escapes and
    quotes element by element in Python (29 timestamps: 78 µs text, 8 µs binary; a reserve's 250 elements were a
    quarter of its first statement). The server gets the same typed values either way."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        from psycopg.types.array import ListBinaryDumper

        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def create_private(database: Path) -> None:
    """Folders made for the database 0700 and the database file 0600 (SQLite gives its WAL and SHM the same).

    The file holds webhook secrets, the admin password's hash and API key hashes: no other local
    user may read it. Modes are set when a folder or the file is created; existing ones are left as they are.
    """
    missing = [p for p in [database.parent, *database.parent.parents] if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
        os.chmod(folder, DIRECTORY_MODE)  # whatever the umask
    if not database.exists():
        try:
            os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
        except FileExistsError:  # another process made it first
            return
        os.chmod(database, FILE_MODE)


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
        # 64 MB of pages per connection, held only as used (the default is 2 MB): a report reading
        # one tag's calls (or a period's raw edges) across a large log re-read its pages from the
        # OS on every query (spend by provider of one tag at 1M calls, 3,000 of them: 29 -> 18 ms)
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("spendboard_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """A pooled server connection is pinged (``SELECT 1``) when it is checked out after more than
    ``PING_AFTER_IDLE_S`` in the pool, and replaced when the ping fails (SQLAlchemy's pessimistic disconnect
    recipe: ``DisconnectionError`` from ``checkout``): a server restart or an idle timeout is never met by a
    request. One used within the last second is not pinged again (as HikariCP's ``aliveBypassWindowMs``):
    ``pool_pre_ping`` pings on every checkout, a round trip of a check's four on PostgreSQL."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return  # new, or in use a moment ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # leave it outside a transaction, as the pool returned it
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection failed its ping: {exc}") from exc


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
