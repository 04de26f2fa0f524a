"""The admin password that guards price edits.

``SPENDBOARD_ADMIN_PASSWORD`` wins when set. Otherwise a password is generated at
first start, only its salted scrypt hash is kept (in ``spendboard_settings``), and
the password itself is printed once on the terminal, like a notebook server token.
Failed attempts are counted in the database per browser session (so the back-off survives
reruns and restarts, and no viewer can lock the admin out of another session): each attempt
is counted before the password is checked, in one write transaction with the lock check, so
parallel attempts of one session cannot each pass the check before a failure is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Integer, Text, cast, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core import config
from core.storage.engine import run_write
from core.storage.tables import Setting

HASH_KEY = "admin_password_hash"
FAILURES_KEY = "admin_failed_attempts"
LOCKED_UNTIL_KEY = "admin_locked_until"
# scrypt cost: about 16 MB and a few tens of ms per check; slow for a guesser, fine for a person.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
FREE_ATTEMPTS = 3  # a typo or two costs nothing; from the third failure on, each one doubles the wait
MAX_LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 30 * 60
ANNOUNCEMENT = "Spendboard admin password (shown once): {password}"


class SignInRefused(Exception):
    """A refused sign-in; the message says why (never what was typed)."""

    def __init__(self, message: str, wait_seconds: int = 0) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): the parameters travel with the hash."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN, maxmem=64 * 1024 * 1024
    )
    b64 = base64.urlsafe_b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_hash(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored ``hash_password`` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _get(conn: Connection, key: str) -> str | None:
    return conn.execute(select(Setting.value).where(Setting.key == key)).scalar_one_or_none()


def _put(conn: Connection, key: str, value: str) -> None:
    dialect = conn.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Setting).values(key=key, value=value)
    conn.execute(statement.on_conflict_do_update(index_elements=[Setting.key], set_={"value": value}))


def _store_new_password(conn: Connection) -> str:
    password = secrets.token_urlsafe(18)
    _put(conn, HASH_KEY, hash_password(password))
    for prefix in (FAILURES_KEY, LOCKED_UNTIL_KEY):  # every session's count and lock
        conn.execute(delete(Setting).where(Setting.key.startswith(prefix, autoescape=True)))
    return password


def bootstrap_admin_password(engine: Engine, announce: bool = True) -> str | None:
    """At first start without ``SPENDBOARD_ADMIN_PASSWORD``: make a password, keep its hash, print it once.

    Returns the new password the one time it is made, else ``None``. Safe to call
    on every start and from several processes: only the one that stores the hash prints.
    """
    if config.admin_password():
        if announce:
            print(env_password_notice(engine), flush=True)
        return None

    def work(conn: Connection) -> str | None:
        if _get(conn, HASH_KEY):
            return None
        return _store_new_password(conn)

    password = run_write(engine, work)
    if password and announce:
        print(ANNOUNCEMENT.format(password=password), flush=True)
    return password


ENV_PASSWORD_NOTICE = (
    "admin password: SPENDBOARD_ADMIN_PASSWORD is set (in the environment or .env) and is the one in use; "
    "no password is generated{stored}"
)


def env_password_notice(engine: Engine) -> str | None:
    """When ``SPENDBOARD_ADMIN_PASSWORD`` is set, a line saying so (it wins over any stored or printed one)."""
    if not config.admin_password():
        return None
    with engine.connect() as conn:
        stored = _get(conn, HASH_KEY)
    return ENV_PASSWORD_NOTICE.format(
        stored=", and the one generated earlier does not work while it is set" if stored else ""
    )


def reset_admin_password(engine: Engine) -> str:
    """Replace the stored password with a new one and return it (the caller shows it once)."""
    return run_write(engine, _store_new_password)


def lock_seconds(failures: int) -> int:
    """How long to refuse attempts after ``failures`` failures in a row."""
    if failures < FREE_ATTEMPTS:
        return 0
    return min(2**failures, MAX_LOCK_SECONDS)


@dataclass(frozen=True)
class SignInState:
    failures: int
    locked_until: float


def _keys(session: str) -> tuple[str, str]:
    """The failure counter and lock of one browser session ("": the command line and older callers)."""
    if not session:
        return FAILURES_KEY, LOCKED_UNTIL_KEY
    return f"{FAILURES_KEY}:{session[:64]}", f"{LOCKED_UNTIL_KEY}:{session[:64]}"


def sign_in_state(engine: Engine, session: str = "") -> SignInState:
    failures_key, locked_key = _keys(session)
    with engine.connect() as conn:
        failures = _get(conn, failures_key)
        locked = _get(conn, locked_key)
    return SignInState(int(failures or 0), float(locked or 0))


def _wait_message(seconds: int) -> str:
    return f"Too many wrong passwords: wait {seconds} s before trying again."


class _Locked(Exception):
    def __init__(self, wait: int) -> None:
        self.wait = wait


def _count_attempt(conn: Connection, session: str, moment: float) -> int:
    """Count this attempt as a failure (undone if it proves right) and set the back-off; raises ``_Locked``."""
    failures_key, locked_key = _keys(session)
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    value = Setting.__table__.c.value
    upsert = insert(Setting).values(key=failures_key, value="1")
    counted = upsert.on_conflict_do_update(
        index_elements=[Setting.key], set_={"value": cast(cast(value, Integer) + 1, Text)}
    ).returning(Setting.value)
    failures = int(conn.execute(counted).scalar_one())  # the row stays locked until commit: one at a time
    locked = float(_get(conn, locked_key) or 0)
    if locked > moment:
        raise _Locked(int(locked - moment + 0.999))  # rolls the count back: a refused attempt is no attempt
    wait = lock_seconds(failures)
    if wait:
        _put(conn, locked_key, repr(moment + wait))
    return wait


def sign_in(engine: Engine, attempt: str, now: float | None = None, session: str = "") -> float:
    """Check the password; returns when the sign-in expires (epoch seconds) or raises ``SignInRefused``.

    ``session`` names the browser session: its wrong passwords never hold back another session.
    """
    moment = time.time() if now is None else now
    if not isinstance(attempt, str) or not attempt:
        state = sign_in_state(engine, session)
        if state.locked_until > moment:
            wait = int(state.locked_until - moment + 0.999)
            raise SignInRefused(_wait_message(wait), wait)
        raise SignInRefused("Enter the admin password.")
    try:
        wait = run_write(engine, lambda conn: _count_attempt(conn, session, moment))
    except _Locked as locked:
        raise SignInRefused(_wait_message(locked.wait), locked.wait) from None
    configured = config.admin_password()
    if configured is not None:
        # digests of equal length, so the comparison reveals nothing, not even the length
        right = hmac.compare_digest(
            hashlib.sha256(attempt.encode()).digest(), hashlib.sha256(configured.encode()).digest()
        )
    else:
        with engine.connect() as conn:
            stored = _get(conn, HASH_KEY)
        right = bool(stored) and check_hash(attempt, stored or "")
    if right:
        keys = list(_keys(session))
        run_write(engine, lambda conn: conn.execute(delete(Setting).where(Setting.key.in_(keys))))
        return moment + SESSION_SECONDS
    if wait:
        raise SignInRefused("Wrong password. " + _wait_message(wait), wait)
    raise SignInRefused("Wrong password.")


def signed_in(expires_at: object, now: float | None = None) -> bool:
    """Whether a sign-in (its expiry, as kept in the session) is still good."""
    moment = time.time() if now is None else now
    return isinstance(expires_at, int | float) and expires_at > moment
