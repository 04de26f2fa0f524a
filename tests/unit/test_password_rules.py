"""The admin password's rules: the back-off cap, hash checks, sign-in expiry."""

from __future__ import annotations

from core.admin import password as auth


def test_lock_is_capped() -> None:
    assert auth.lock_seconds(1) == 0
    assert auth.lock_seconds(40) == auth.MAX_LOCK_SECONDS


def test_hash_check_refuses_garbage_and_wrong_passwords() -> None:
    stored = auth.hash_password("pw")
    assert auth.check_hash("pw", stored)
    assert not auth.check_hash("pW", stored)
    assert not auth.check_hash("pw", "md5$abc")
    assert not auth.check_hash("pw", "scrypt$x$y")


def test_sign_in_expires() -> None:
    assert auth.signed_in(100.0, now=99.0)
    assert not auth.signed_in(100.0, now=100.0)
    assert not auth.signed_in(None, now=0.0)
