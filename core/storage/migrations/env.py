"""Alembic's entry: migrate the connection ``core.storage.migrate.upgrade_database`` hands over.

The caller owns the transaction (and the lock that keeps two processes from migrating
at once), so this only configures the context on that connection. Without one (a
developer's ``command.revision(..., autogenerate=True)``) it connects to ``DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core.storage.migrations import all_tables

config = context.config
target_metadata = all_tables()


def run_on(connection: Connection) -> None:
    # SQLite cannot ALTER most things: autogenerate writes batch operations there.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    from core.storage.engine import make_engine

    engine = make_engine()
    try:
        with engine.connect() as conn:
            run_on(conn)
            conn.commit()
    finally:
        engine.dispose()
