"""PostgreSQL: a pooled connection the server dropped while it sat idle (a restart, an idle timeout) is
pinged on its next checkout and replaced, so no request meets a dead connection; one used a moment ago is
not pinged again (a round trip saved on every check)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_schema import PG_URL
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from core.storage import engine as engine_module
from core.storage.engine import make_engine

pytestmark = pytest.mark.skipif(PG_URL is None, reason="needs TEST_DATABASE_URL (PostgreSQL)")


def _pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def dropped() -> Iterator[tuple[Engine, int]]:
    """An engine whose one pooled connection (its server process id given) the server has just terminated."""
    assert PG_URL is not None
    engine = make_engine(PG_URL)
    admin = create_engine(PG_URL)
    try:
        first = _pid(engine)
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one()
        yield engine, first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    dropped: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, first = dropped
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # idle long enough to be pinged
    assert _pid(engine) != first  # the dead connection was pinged, dropped and replaced: no error


def test_a_connection_used_within_the_window_is_not_pinged(
    dropped: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the window: inside it nothing is sent before the statement, so a connection the server
    dropped a moment ago fails that statement (and the pool then drops it), as without any ping."""
    engine, first = dropped
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 60.0)
    with pytest.raises(OperationalError):
        _pid(engine)
    assert _pid(engine) != first  # invalidated by the failure, replaced at the next checkout
