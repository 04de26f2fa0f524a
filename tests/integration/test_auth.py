"""The admin password: generated once and printed once, hashed at rest, slowed down when guessed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.admin import password as auth
from core.storage.tables import Setting


def _stored(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(conn.execute(select(Setting.key, Setting.value)).all())


def test_first_start_generates_prints_once_and_keeps_only_a_hash(empty_engine, capsys) -> None:  # type: ignore[no-untyped-def]
    password = auth.bootstrap_admin_password(empty_engine)
    assert password and len(password) >= 20
    out = capsys.readouterr().out
    assert out.strip() == f"Spendboard admin password (shown once): {password}"
    assert auth.bootstrap_admin_password(empty_engine) is None  # second start: nothing new, nothing printed
    assert capsys.readouterr().out == ""
    stored = _stored(empty_engine)[auth.HASH_KEY]
    assert password not in stored and stored.startswith("scrypt$16384$8$1$")
    assert auth.sign_in(empty_engine, password, now=1000.0) == 1000.0 + auth.SESSION_SECONDS


def test_environment_password_wins_and_nothing_is_generated(empty_engine, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "s3cret-from-env")
    assert auth.bootstrap_admin_password(empty_engine) is None
    out = capsys.readouterr().out  # says which password is in use, never the password itself
    assert "SPENDBOARD_ADMIN_PASSWORD is set" in out and "s3cret" not in out
    assert auth.sign_in(empty_engine, "s3cret-from-env", now=0.0) == auth.SESSION_SECONDS
    with pytest.raises(auth.SignInRefused, match="Wrong password"):
        auth.sign_in(empty_engine, "s3cret-from-en", now=0.0)


def test_repeated_failures_back_off_exponentially_and_say_how_long(empty_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "right")
    now = 10_000.0
    for _ in range(auth.FREE_ATTEMPTS - 1):
        with pytest.raises(auth.SignInRefused) as refused:
            auth.sign_in(empty_engine, "wrong", now=now)
        assert refused.value.wait_seconds == 0
    with pytest.raises(auth.SignInRefused) as refused:
        auth.sign_in(empty_engine, "wrong", now=now)
    assert refused.value.wait_seconds == 2**auth.FREE_ATTEMPTS
    # while locked even the right password is refused, with the time left
    with pytest.raises(auth.SignInRefused, match=r"wait 5 s") as refused:
        auth.sign_in(empty_engine, "right", now=now + 3)
    # the lock is in the database: a new process (fresh state read) sees it too
    assert auth.sign_in_state(empty_engine).failures == auth.FREE_ATTEMPTS
    with pytest.raises(auth.SignInRefused) as refused:
        auth.sign_in(empty_engine, "wrong", now=now + 9)
    assert refused.value.wait_seconds == 2 ** (auth.FREE_ATTEMPTS + 1)
    assert auth.sign_in(empty_engine, "right", now=now + 9 + 17) > now
    assert auth.sign_in_state(empty_engine).failures == 0


def test_reset_replaces_the_password(empty_engine, capsys) -> None:  # type: ignore[no-untyped-def]
    old = auth.bootstrap_admin_password(empty_engine, announce=False)
    new = auth.reset_admin_password(empty_engine)
    assert new != old
    with pytest.raises(auth.SignInRefused):
        auth.sign_in(empty_engine, old or "", now=0.0)
    assert auth.sign_in(empty_engine, new, now=0.0)
    assert old not in capsys.readouterr().out


