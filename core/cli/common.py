"""What every command family shares: the bad-input error and the database a command works on."""

from __future__ import annotations

from sqlalchemy import Engine

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Anything the user gave that cannot be used; printed as one line, exit 2."""


def _engine(read_only: bool = False) -> Engine:
    """The database of ``DATABASE_URL`` for a command other than ``init``.

    A SQLite file whose folder does not exist is refused (a misspelt path must not grow folders:
    ``init`` creates them); a command that only reads refuses a database without Spendboard's
    tables and creates nothing; one that writes creates the schema only in an empty database.
    """
    import core.limits  # noqa: F401 - registers budget detection and enforced-budget counters on recording
    from core.config import check_environment, database_url, shown_url
    from core.storage.engine import make_engine, sqlite_path
    from core.storage.migrate import require_schema, upgrade_database

    check_environment()  # a bad setting is refused before the database is touched
    url = database_url()
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise BadInput(
            f"DATABASE_URL: the folder {path.parent} of {shown_url(url)} does not exist; "
            "run `python -m core init` to create the database there"
        )
    if path is not None and read_only and not path.exists():
        raise BadInput(f"DATABASE_URL: there is no database at {path}; run `python -m core init` to create it")
    engine = make_engine(url)
    # a user who pulled new code and runs any command gets the schema upgraded first (one
    # small read when current); quietly, so output and the one-line errors stay as they are
    if read_only:
        require_schema(engine)
    else:
        upgrade_database(engine)
    return engine
