"""What every command family shares: the bad-input error and the database a command works on."""

from __future__ import annotations

from sqlalchemy import Engine

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Anything the user gave that cannot be used; printed as one line, exit 2."""


def _engine() -> Engine:
    import core.limits  # noqa: F401 - registers budget detection and enforced-budget counters on recording
    from core.config import check_environment
    from core.storage.engine import make_engine
    from core.storage.migrate import upgrade_database

    check_environment()  # a bad setting is refused before the database is touched
    engine = make_engine()
    # a user who pulled new code and runs any command gets the schema upgraded first (one
    # small read when current); quietly, so output and the one-line errors stay as they are
    upgrade_database(engine)
    return engine
