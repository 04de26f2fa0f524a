"""API keys: ``sb_<prefix>_<secret>``; only the SHA-256 of the whole key is stored.

The secret is 32 random bytes, so a fast hash is enough (nothing to brute-force,
unlike a password); the prefix finds the row and the hash is compared in
constant time. A key may carry a project, which tags the calls it sends unless a
call names its own. ``last_used_at`` is written at most once a minute per key.

A key has a scope: ``ingest`` (the ingestion routes; what every key made before scopes
existed is), ``read`` (the read API and ``/metrics``), ``check`` (``POST /api/v1/check``) or
``all``. Routes call :func:`require_scope`; a key outside its scope gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.pricing.validation import unsafe_character
from core.storage.engine import run_write
from core.storage.key_tables import ApiKey

KEY_PREFIX = "sb_"
PREFIX_CHARS = 10
SECRET_BYTES = 32
NAME_LIMIT = 100
PROJECT_LIMIT = 200
LAST_USED_EVERY = timedelta(seconds=60)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_KEY_SHAPE = re.compile(r"^sb_([a-z0-9]{10})_[A-Za-z0-9_-]{20,100}$")
_DUMMY_HASH = hashlib.sha256(b"spendboard-no-such-key").hexdigest()
SCOPES = ("ingest", "read", "check", "all")
DEFAULT_SCOPE = "ingest"


class ApiKeyError(ValueError):
    """A key command that cannot be done (bad name, name taken, no such key); the message says which."""


class ScopeError(PermissionError):
    """A key used outside its scope (the route answers 403); the message names the scope needed."""

    def __init__(self, key_name: str, key_scope: str, needed: str) -> None:
        super().__init__(
            f"API key {key_name!r} has scope {key_scope!r}; this route needs a key of scope {needed!r} (or 'all')"
        )
        self.needed = needed


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed and as a request is authenticated by: never the key itself."""

    id: int
    name: str
    prefix: str
    project: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    scope: str = DEFAULT_SCOPE

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key`` is shown once and never stored."""

    info: KeyInfo
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _clean(value: object, field: str, limit: int) -> str:
    """Printable text, trimmed, within ``limit`` characters (the rules of provider and model names)."""
    if not isinstance(value, str):
        raise ApiKeyError(f"{field}: {value!r} is not text")
    text = value.strip()
    if not text:
        raise ApiKeyError(f"{field}: empty value")
    if len(text) > limit:
        raise ApiKeyError(f"{field}: {text[:40]!r}... is {len(text)} characters, over the limit of {limit}")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ApiKeyError(f"{field}: {text[:60]!r} contains control characters or invalid bytes")
    if bad := unsafe_character(text):
        raise ApiKeyError(f"{field}: {text[:60]!r} contains {bad}")
    return text


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        row.id, row.name, row.prefix, row.project, row.created_at, row.revoked_at, row.last_used_at, row.scope
    )


def parse_scope(value: object) -> str:
    """One of :data:`SCOPES` (``None`` or empty: the default, ``ingest``)."""
    if value is None or value == "":
        return DEFAULT_SCOPE
    if not isinstance(value, str) or value.strip().lower() not in SCOPES:
        raise ApiKeyError(f"scope: {value!r} is not one of {', '.join(SCOPES)}")
    return value.strip().lower()


def allows(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may use a route needing ``needed``."""
    if needed not in SCOPES or needed == "all":
        raise ValueError(f"needed: {needed!r} is not a route scope ({', '.join(SCOPES[:-1])})")
    return scope in (needed, "all")


def require_scope(key: KeyInfo, needed: str) -> None:
    """Raise :class:`ScopeError` (answer 403) unless ``key`` may use a route needing ``needed``."""
    if not allows(key.scope, needed):
        raise ScopeError(key.name, key.scope, needed)


def create_key(engine: Engine, name: str, project: str | None = None, scope: str | None = None) -> NewKey:
    """A new key named ``name`` (unique, also among revoked keys), optionally tagging calls with ``project``.

    ``scope``: which routes it may use (default ``ingest``).
    """
    clean = _clean(name, "name", NAME_LIMIT)
    scope_clean = parse_scope(scope)
    project_clean = _clean(project, "project", PROJECT_LIMIT) if project not in (None, "") else None
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_CHARS))
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    now = datetime.now(UTC)

    def work(conn: Connection) -> KeyInfo:
        if conn.execute(select(ApiKey.id).where(ApiKey.name == clean)).first() is not None:
            raise ApiKeyError(f"name: a key named {clean!r} exists already (names stay taken after a revoke)")
        row_id = conn.execute(
            insert(ApiKey)
            .values(
                name=clean,
                prefix=f"{KEY_PREFIX}{prefix}",
                key_hash=hash_key(key),
                project=project_clean,
                scope=scope_clean,
                created_at=now,
            )
            .returning(ApiKey.id)
        ).scalar_one()
        return KeyInfo(row_id, clean, f"{KEY_PREFIX}{prefix}", project_clean, now, None, None, scope_clean)

    try:
        info = run_write(engine, work)
    except IntegrityError:  # a concurrent create of the same name
        raise ApiKeyError(f"name: a key named {clean!r} exists already") from None
    return NewKey(info, key)


def list_keys(engine: Engine) -> list[KeyInfo]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return [_info(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]


def revoke_key(engine: Engine, name: str) -> KeyInfo:
    """Revoke by name; from now on the key gets 401. Revoking a revoked key changes nothing."""
    clean = _clean(name, "name", NAME_LIMIT)

    def work(conn: Connection) -> KeyInfo:
        row = conn.execute(select(ApiKey.__table__).where(ApiKey.name == clean)).first()
        if row is None:
            raise ApiKeyError(f"name: no key named {clean!r}")
        revoked = row.revoked_at
        if revoked is None:
            revoked = datetime.now(UTC)
            conn.execute(update(ApiKey).where(ApiKey.id == row.id).values(revoked_at=revoked))
        return KeyInfo(
            row.id, row.name, row.prefix, row.project, row.created_at, revoked, row.last_used_at, row.scope
        )

    return run_write(engine, work)


def parse_bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def authenticate(engine: Engine, key: str | None, *, now: datetime | None = None) -> KeyInfo | None:
    """The active key matching ``key``, or None (unknown, malformed or revoked: the caller answers 401)."""
    match = _KEY_SHAPE.match(key) if key else None
    digest = hash_key(key) if key else _DUMMY_HASH
    if match is None:
        hmac.compare_digest(digest, _DUMMY_HASH)  # the same work whether or not the shape is right
        return None
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey.__table__).where(ApiKey.prefix == f"{KEY_PREFIX}{match.group(1)}")).first()
    stored = row.key_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(digest, stored) or row is None or row.revoked_at is not None:
        return None
    moment = now or datetime.now(UTC)
    if row.last_used_at is None or moment - row.last_used_at >= LAST_USED_EVERY:
        _touch(engine, row.id, moment)
    return KeyInfo(row.id, row.name, row.prefix, row.project, row.created_at, None, moment, row.scope)


def _touch(engine: Engine, key_id: int, moment: datetime) -> None:
    def work(conn: Connection) -> None:
        conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=moment))

    run_write(engine, work)
