"""Issue 19, point 11: wrong passwords are counted per browser session, atomically; no viewer locks the admin out."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from core.admin import password as auth

RIGHT = "s3cret-from-env"


@pytest.fixture(autouse=True)
def env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", RIGHT)


def attempt(engine: Engine, text: str, session: str, now: float) -> str:
    try:
        auth.sign_in(engine, text, now=now, session=session)
    except auth.SignInRefused as exc:
        return "locked" if str(exc).startswith("Too many") else "wrong"
    return "in"


def test_a_viewers_wrong_passwords_never_lock_the_admin_out(empty_engine: Engine) -> None:
    for _ in range(10):
        attempt(empty_engine, "guess", "viewer", 1000.0)
    assert attempt(empty_engine, "guess", "viewer", 1000.0) == "locked"
    assert attempt(empty_engine, RIGHT, "viewer", 1000.0) == "locked"  # that session waits, even with the right one
    assert attempt(empty_engine, RIGHT, "admin", 1000.0) == "in"  # another session: whatever the viewer tried


def test_parallel_attempts_of_one_session_cannot_each_take_a_free_guess(empty_engine: Engine) -> None:
    """Twelve attempts at once from one session: only the free ones are checked, the rest wait."""
    workers = 12
    start = threading.Barrier(workers)

    def one(_: int) -> str:
        start.wait()
        return attempt(empty_engine, "guess", "racer", 5000.0)

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(one, range(workers)))
    assert answers.count("wrong") == auth.FREE_ATTEMPTS, answers
    assert answers.count("locked") == workers - auth.FREE_ATTEMPTS
    assert auth.sign_in_state(empty_engine, "racer").failures == auth.FREE_ATTEMPTS
