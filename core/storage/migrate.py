"""Bring any database to the schema of this code, in place, once, whoever starts first.

Three kinds of database meet this code: an empty one (made by every revision), one
made by ``create_all`` without Alembic (every release-1 database: stamped with the
baseline, then upgraded), and one Alembic already manages (upgraded). A database at a
revision this code does not know was made by a newer Spendboard and is refused.

The check and the migration run in one transaction that holds a lock (PostgreSQL: an
advisory lock; SQLite: the write lock taken at ``BEGIN IMMEDIATE``), so two processes
starting together migrate once: the second waits, then finds the schema current.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from core.storage.engine import DatabaseSchemaError, DatabaseTooNewError, run_write
from core.storage.migrations import RELEASE1, alembic_config, all_tables, script_directory

if TYPE_CHECKING:  # Alembic is imported where a migration runs: every command checks the schema, most find it current
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# pg_advisory_xact_lock key: any constant shared by every Spendboard process
LOG_TABLE = "api_usage_logs"  # in every Spendboard database since release 1: what tells one from another's
PG_LOCK_KEY = 0x5B0A_2D09


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return script_directory()


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "core/migrations/versions has no revision"
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in ``alembic_version``; ``None`` when there is none."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _upgrade_database(engine: Engine) -> list[str]:
    """Make the schema current; returns what was done, in words (empty: nothing to do)."""
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head_revision():
        return []  # the common case: one small read, no lock
    _refuse_unknown(current)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            return _upgrade(conn)
    return run_write(engine, _upgrade)


def _refuse_unknown(revision: str | None) -> None:
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision is not None and revision not in known:
        raise DatabaseTooNewError(
            f"the database schema is at revision {revision!r}, which this Spendboard does not know "
            f"(its newest is {head_revision()!r}): the database was upgraded by a newer Spendboard; "
            "upgrade Spendboard to use it"
        )


def _upgrade(conn: Connection) -> list[str]:
    """Under the lock: look again (another process may have just done it), then act."""
    from alembic import command

    head = head_revision()
    current = current_revision(conn)
    if current == head:
        return []
    _refuse_unknown(current)
    config = alembic_config()
    config.attributes["connection"] = conn
    done: list[str] = []
    if current is None:
        existing = set(inspect(conn).get_table_names())
        if LOG_TABLE not in existing:  # every Spendboard database has had the log since release 1
            foreign = sorted(existing - {"alembic_version"})
            if foreign:
                raise ForeignDatabaseError(_foreign_message(conn, foreign))
            # every revision from nothing: the tables are what the migrations say, whichever
            # model modules this process happened to import (a test holds them equal)
            command.upgrade(config, "head")
            made = sorted(set(inspect(conn).get_table_names()) - {"alembic_version"})
            return [f"created tables: {', '.join(made)}", f"schema at revision {head}"]
        if "project" not in {c["name"] for c in inspect(conn).get_columns("api_usage_logs")}:
            current = RELEASE1  # made by release 1's create_all
            command.stamp(config, current)
            done.append(f"found a release-1 database (schema {RELEASE1})")
        else:
            return _adopt_current(conn, config, existing, head)
    command.upgrade(config, "head")
    done.append(f"upgraded the database schema from {current} to {head}, every row kept")
    return done


def _adopt_current(conn: Connection, config: Config, existing: set[str], head: str) -> list[str]:
    """Tables made by ``create_all`` of today's models (tests, development): stamp them at head.

    Missing tables are created; a table missing a column matches no revision and is refused
    rather than stamped wrongly.
    """
    from alembic import command

    inspector = inspect(conn)
    metadata = all_tables()
    for name, table in metadata.tables.items():
        if name in existing:
            have = {c["name"] for c in inspector.get_columns(name)}
            missing = [c.name for c in table.columns if c.name not in have]
            if missing:
                raise DatabaseSchemaError(
                    f"table {name} lacks columns {', '.join(missing)} and the database has no migration "
                    "history: its schema matches no Spendboard release"
                )
    created = [name for name in metadata.tables if name not in existing]
    metadata.create_all(conn)
    command.stamp(config, head)
    done = [f"created tables: {', '.join(created)}"] if created else []
    return [*done, f"recorded schema revision {head} (tables made without migrations)"]


class ForeignDatabaseError(DatabaseSchemaError):
    """A database that holds another application's tables and none of Spendboard's: never written to."""


class NoSchemaError(DatabaseSchemaError):
    """A database without Spendboard's tables, opened by a command that only reads."""


def _where(engine_or_conn: Engine | Connection) -> str:
    from core.config import shown_url

    return shown_url(engine_or_conn.engine.url.render_as_string(hide_password=False))


def _foreign_message(conn: Connection, foreign: list[str]) -> str:
    listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (
        f"DATABASE_URL: {_where(conn)} holds other tables ({listed}) and none of Spendboard's; "
        "Spendboard writes its schema only into an empty database or its own: point DATABASE_URL at one"
    )


def require_schema(engine: Engine) -> None:
    """For commands and routes that only read: refuse a database without Spendboard's tables.

    A Spendboard database of an earlier release is upgraded in place as every command does;
    an empty or foreign one is left untouched, with a message that says to run ``init``.
    """
    existing = set(inspect(engine).get_table_names())
    if LOG_TABLE not in existing:
        held = sorted(existing - {"alembic_version"})
        holds = f" (it holds {', '.join(held[:5])}{' ...' if len(held) > 5 else ''})" if held else ""
        raise NoSchemaError(
            f"DATABASE_URL: {_where(engine)} has no Spendboard tables{holds}; run `python -m core init` to create them"
        )
    upgrade_database(engine)


def create_tables(engine: Engine) -> list[str]:
    """Create missing tables; returns the names created."""
    from core.storage.schema import metadata

    existing = set(_table_names(engine))
    metadata.create_all(engine)
    return [name for name in metadata.tables if name not in existing]


def upgrade_database(engine: Engine) -> list[str]:
    """Bring the schema to this code's revision in place (Alembic); returns what it did.

    Empty database: made at head. Release-1 database (no migration history): stamped
    with the baseline, then upgraded, every row kept. Newer than the code: refused with
    ``DatabaseTooNewError``. Cheap when already current (one read, no lock).
    """
    from core.storage.migrations import newest_revision

    head = newest_revision()
    if head is not None and _stamped_revision(engine) == head:
        return []  # the common case: one small read, without importing Alembic
    return _upgrade_database(engine)


def _stamped_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return revisions[0] if len(revisions) == 1 else None


def _table_names(engine: Engine) -> list[str]:
    from sqlalchemy import inspect

    return inspect(engine).get_table_names()
