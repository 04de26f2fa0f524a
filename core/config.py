"""Settings from the environment and ``.env``, validated when read.

A real environment variable wins over ``.env``; an empty value means unset.
A bad value raises :class:`ConfigError`, whose message names the variable and
the value, so the CLI can exit 2 and the app can show it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from dotenv import load_dotenv
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from core.money import MAX_TOKEN_PRICE, MoneyError, parse_amount

DEFAULT_DATABASE_URL = "sqlite:///data/spendboard.db"
# The drivers Spendboard ships with; any other scheme is refused by name before a connection is tried.
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
EXAMPLE_URLS = f"{DEFAULT_DATABASE_URL} or postgresql://user:password@host:5432/database"
HUGGINGFACE_DEFAULTS = (Decimal("0.000001"), Decimal("0.000003"))
# Providers whose environment prices come from the HuggingFace variables (ALwrity maps
# HuggingFace models to the Mistral provider, so both read the same pair).
SHARES_HUGGINGFACE_VARIABLES = frozenset({"huggingface", "mistral"})

_dotenv_loaded = False


class ConfigError(ValueError):
    """A setting with a bad value; the message names the variable and the value."""


def load_environment(path: str | os.PathLike[str] | None = None) -> None:
    """Load ``.env`` from the working directory once; real variables win."""
    global _dotenv_loaded
    if _dotenv_loaded and path is None:
        return
    load_dotenv(dotenv_path=Path(path) if path else Path.cwd() / ".env", override=False)
    _dotenv_loaded = True


def _get(name: str) -> str | None:
    load_environment()
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def shown_url(url: str) -> str:
    """A database URL as it may be printed: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def database_url() -> str:
    """``DATABASE_URL`` (default SQLite), checked: a known scheme and driver, parsable."""
    url = _get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if "://" not in url:
        raise ConfigError(f"DATABASE_URL: {shown_url(url)!r} is not a database URL (expected e.g. {EXAMPLE_URLS})")
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL: {shown_url(url)!r} is not a database URL (expected e.g. {EXAMPLE_URLS})"
        ) from None
    if driver not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL: {shown_url(url)!r} is not a supported database URL "
            f"(SQLite or PostgreSQL, e.g. {EXAMPLE_URLS})"
        )
    return url


def env_prefix(provider: str) -> str:
    """``groq`` -> ``GROQ``; ``together-ai`` -> ``TOGETHER_AI``."""
    return re.sub(r"[^A-Z0-9]+", "_", provider.upper()).strip("_")


def token_cost(name: str) -> Decimal | None:
    """A per-token cost variable, validated; ``None`` when unset or empty."""
    raw = _get(name)
    if raw is None:
        return None
    try:
        return parse_amount(raw, name, maximum=MAX_TOKEN_PRICE)
    except MoneyError as exc:
        raise ConfigError(f"{exc} (USD per token)") from None


@dataclass(frozen=True)
class EnvPrice:
    """A provider's per-token prices as the environment gives them."""

    variables: tuple[str, str]
    input_token_cost: Decimal
    output_token_cost: Decimal


def env_price(provider: str) -> EnvPrice | None:
    """The environment's price pair for a provider, or ``None`` if it sets none.

    HuggingFace (and Mistral, which shares its variables) always has one: the
    seed's defaults apply where the variables are unset.
    """
    provider = provider.strip().lower()
    if provider in SHARES_HUGGINGFACE_VARIABLES:
        names = ("HUGGINGFACE_INPUT_TOKEN_COST", "HUGGINGFACE_OUTPUT_TOKEN_COST")
        default_in, default_out = HUGGINGFACE_DEFAULTS
        in_cost, out_cost = token_cost(names[0]), token_cost(names[1])
        return EnvPrice(
            names, in_cost if in_cost is not None else default_in, out_cost if out_cost is not None else default_out
        )
    prefix = env_prefix(provider)
    if not prefix:
        return None
    names = (f"{prefix}_INPUT_TOKEN_COST", f"{prefix}_OUTPUT_TOKEN_COST")
    in_cost, out_cost = token_cost(names[0]), token_cost(names[1])
    if in_cost is None and out_cost is None:
        return None
    if in_cost is None or out_cost is None:
        missing = names[0] if in_cost is None else names[1]
        present = names[1] if in_cost is None else names[0]
        raise ConfigError(f"{missing}: unset while {present} is set (set both or neither)")
    return EnvPrice(names, in_cost, out_cost)


def env_priced_providers() -> list[str]:
    """Providers (lower-case) that have a ``<PROVIDER>_INPUT_TOKEN_COST`` variable set."""
    load_environment()
    found = set()
    for name, value in os.environ.items():
        match = re.fullmatch(r"([A-Z0-9_]+)_(INPUT|OUTPUT)_TOKEN_COST", name)
        if match and value.strip():
            found.add(match.group(1).lower())
    return sorted(found)


IMPORT_BATCH_LIMITS = (1, 1_000_000)


def import_batch_size(default: int) -> int:
    """``SPENDBOARD_IMPORT_BATCH``: rows per import transaction (a smaller one loses less to a crash)."""
    raw = _get("SPENDBOARD_IMPORT_BATCH")
    if raw is None:
        return default
    low, high = IMPORT_BATCH_LIMITS
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ConfigError(f"SPENDBOARD_IMPORT_BATCH: {raw!r} is not a whole number from {low} to {high:,}")
    return int(raw)


def check_environment() -> None:
    """Read every setting once so a bad value is refused before anything is written."""
    database_url()
    env_price("huggingface")
    for provider in env_priced_providers():
        env_price(provider)


def admin_password() -> str | None:
    return _get("SPENDBOARD_ADMIN_PASSWORD")
