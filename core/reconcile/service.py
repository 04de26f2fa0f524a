"""The use cases of reconciliation: fetch a provider's report (or import saved pages) and store it.

The admin key and base URL come from the environment (``OPENAI_ADMIN_KEY``,
``OPENAI_ADMIN_BASE_URL``, ``ANTHROPIC_ADMIN_KEY``, ``ANTHROPIC_ADMIN_BASE_URL``), validated when
read like every setting. Nothing is stored unless the whole report was had and read.
"""

from __future__ import annotations

import os
from datetime import date
from types import ModuleType
from urllib.parse import urlsplit

from sqlalchemy import Engine

from core import config
from core.config import ConfigError
from core.reconcile import anthropic, openai
from core.reconcile.errors import ReconcileError
from core.reconcile.files import read_pages
from core.reconcile.lines import Fetched
from core.reconcile.store import Stored, store_fetched

CLIENTS: dict[str, ModuleType] = {openai.PROVIDER: openai, anthropic.PROVIDER: anthropic}


def client(provider: str) -> ModuleType:
    found = CLIENTS.get(provider)
    if found is None:
        raise ReconcileError(provider, f"no report can be fetched for this provider (one of {', '.join(CLIENTS)})")
    return found


def _setting(name: str) -> str | None:
    config.load_environment()
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def admin_key(provider: str) -> str | None:
    """The provider's admin key from the environment (or ``.env``), or None when unset."""
    return _setting(client(provider).KEY_VARIABLE)


def base_url(provider: str) -> str:
    """The provider's Admin API base URL: the variable when set (an http or https URL), else the default."""
    module = client(provider)
    raw = _setting(module.BASE_URL_VARIABLE)
    if raw is None:
        return str(module.DEFAULT_BASE_URL)
    try:
        parts = urlsplit(raw)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{module.BASE_URL_VARIABLE}: {raw!r} is not an http(s) URL (e.g. {module.DEFAULT_BASE_URL})")
    return raw


def check_settings(provider: str) -> None:
    """Refuse a bad base URL before anything is fetched."""
    base_url(provider)


def fetch_and_store(
    engine: Engine,
    provider: str,
    since: date,
    until: date,
    *,
    timeout: float | None = None,
) -> Stored:
    """Fetch the UTC days from ``since`` up to, not including, ``until`` and store them (one transaction).

    Raises ``ReconcileError`` (a missing or refused key, a server that does not answer, a page of
    the wrong shape) with nothing stored; ``ConfigError`` for a bad base URL.
    """
    module = client(provider)
    url = base_url(provider)
    key = admin_key(provider)
    if key is None:
        raise ReconcileError(provider, f"no admin key (set {module.KEY_VARIABLE})")
    options = {} if timeout is None else {"timeout": timeout}
    fetched: Fetched = module.fetch(since, until, api_key=key, base_url=url, **options)
    return store_fetched(engine, fetched)


def import_and_store(engine: Engine, path: str | os.PathLike[str], provider: str) -> Stored:
    """Store the report pages saved in a file; a file not of such pages is refused whole."""
    client(provider)
    return store_fetched(engine, read_pages(path, provider))
