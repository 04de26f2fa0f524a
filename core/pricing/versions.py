"""Price versions: the rows of the price table and how they are read.

Every change is a new version (``effective_from``); no row is ever updated or
deleted, so what a call was priced with stays visible. A price's key is
(provider, model name lower-cased, service tier). The first version of a key,
from any source, is in force from the beginning of time unless its editor
picks a date; a later one from when it is saved, or from the chosen date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from core.money import (
    format_per_million,
    to_text,
)
from core.pricing.rates import normalize_provider
from core.storage.tables import PriceVersion

HUGGINGFACE = "huggingface"


SERVICE_TIERS = ("standard", "batch", "flex", "priority")


DEFAULT_TIER = "standard"


PriceKey = tuple[str, str, str]  # (provider, model name lower-cased, service tier)


@dataclass(frozen=True)
class RateField:
    """One price field: its column (USD per token, or per search / per call), its form name and label."""

    column: str
    edit: str
    label: str
    per_token: bool
    required: bool = False
    falls_back_to: str | None = None  # the column whose rate applies when this one is empty


RATE_FIELDS = (
    RateField("input_token_cost", "input_per_1m", "Input per 1M tokens (USD)", True, True),
    RateField("output_token_cost", "output_per_1m", "Output per 1M tokens (USD)", True, True),
    RateField(
        "cached_input_token_cost",
        "cached_input_per_1m",
        "Cached input per 1M tokens (USD)",
        True,
        False,
        "input_token_cost",
    ),
    RateField(
        "cache_write_token_cost",
        "cache_write_per_1m",
        "Cache write (5 min) per 1M tokens (USD)",
        True,
        False,
        "input_token_cost",
    ),
    RateField(
        "cache_write_1h_token_cost",
        "cache_write_1h_per_1m",
        "Cache write (1 hour) per 1M tokens (USD)",
        True,
        False,
        "cache_write_token_cost",
    ),
    RateField(
        "reasoning_token_cost", "reasoning_per_1m", "Reasoning per 1M tokens (USD)", True, False, "output_token_cost"
    ),
    RateField("cost_per_web_search", "cost_per_web_search", "Per web search (USD)", False),
    RateField("cost_per_request", "cost_per_request", "Per request (USD)", False),
)


RATE_COLUMNS = tuple(f.column for f in RATE_FIELDS)


BY_COLUMN = {f.column: f for f in RATE_FIELDS}


# How the form names each field (errors speak the label the user sees, not the attribute).
LABELS = {f.edit: f.label for f in RATE_FIELDS} | {
    "provider": "Provider",
    "model": "Model name",
    "service_tier": "Service tier",
    "tiers": "Long-context tiers",
    "changed_by": "Changed by",
    "note": "Note",
    "effective_from": "In force from",
}


class PriceEditError(ValueError):
    """A refused price edit; ``field`` names the form field, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PriceTier:
    """A long-context tier: above ``above_input_tokens`` input tokens its rates replace the base ones."""

    above_input_tokens: int
    rates: tuple[tuple[str, Decimal], ...]  # (column, value) in RATE_COLUMNS order

    def rate(self, column: str) -> Decimal | None:
        return dict(self.rates).get(column)

    def as_json(self) -> dict[str, object]:
        """Per token, money as decimal strings (how it is stored and printed)."""
        return {"above_input_tokens": self.above_input_tokens} | {c: to_text(v) for c, v in self.rates}


def tiers_to_json(tiers: Sequence[PriceTier]) -> str | None:
    return json.dumps([t.as_json() for t in tiers], separators=(",", ":")) if tiers else None


def tiers_from_json(stored: str | None) -> tuple[PriceTier, ...]:
    """Tiers as stored (trusted: written by this module or a migration)."""
    if not stored or not stored.strip():
        return ()
    items = json.loads(stored, parse_float=Decimal)
    return tuple(
        PriceTier(
            int(item["above_input_tokens"]),
            tuple((c, Decimal(str(item[c]))) for c in RATE_COLUMNS if item.get(c) not in (None, "")),
        )
        for item in items
    )


@dataclass(frozen=True)
class PriceRow:
    """A price version as pages and the CLI show it."""

    id: int
    provider: str
    model_name: str
    input_token_cost: Decimal
    output_token_cost: Decimal
    cached_input_token_cost: Decimal | None
    cost_per_request: Decimal | None
    effective_from: datetime
    retired: bool
    source: str
    changed_by: str | None
    note: str | None
    created_at: datetime
    cache_write_token_cost: Decimal | None = None
    cache_write_1h_token_cost: Decimal | None = None
    reasoning_token_cost: Decimal | None = None
    cost_per_web_search: Decimal | None = None
    service_tier: str = DEFAULT_TIER
    tiers: tuple[PriceTier, ...] = ()
    match_rule: str | None = None

    @property
    def key(self) -> PriceKey:
        return _key(self.provider, self.model_name, self.service_tier)

    def rate(self, column: str) -> Decimal | None:
        value = getattr(self, column)
        return value if value is None or isinstance(value, Decimal) else Decimal(value)

    def effective_rate(self, column: str) -> Decimal:
        """The rate that applies when the field is empty, as DESIGN.md "A price version" says."""
        return _effective(lambda c: self.rate(c), column)


def _effective(rate: Any, column: str) -> Decimal:
    value = rate(column)
    while value is None:
        fallback = BY_COLUMN[column].falls_back_to
        if fallback is None:
            return Decimal(0)
        column = fallback
        value = rate(column)
    return value  # type: ignore[no-any-return]


def _key(provider: str, model_name: str, service_tier: str = DEFAULT_TIER) -> PriceKey:
    return (normalize_provider(provider), model_name.strip().lower(), service_tier or DEFAULT_TIER)


def _signature(rates: Mapping[str, object] | PriceRow) -> tuple[object, ...]:
    """What makes two versions price the same: every rate and the tiers."""
    if isinstance(rates, PriceRow):
        return tuple(rates.rate(c) for c in RATE_COLUMNS) + (rates.tiers,)
    return tuple(rates.get(c) for c in RATE_COLUMNS) + (tuple(rates.get("tiers") or ()),)  # type: ignore[arg-type]


def _row(version: PriceVersion) -> PriceRow:
    return PriceRow(
        version.id,
        version.provider,
        version.model_name,
        version.input_token_cost,
        version.output_token_cost,
        version.cached_input_token_cost,
        version.cost_per_request,
        version.effective_from,
        version.retired,
        version.source,
        version.changed_by,
        version.note,
        version.created_at,
        cache_write_token_cost=version.cache_write_token_cost,
        cache_write_1h_token_cost=version.cache_write_1h_token_cost,
        reasoning_token_cost=version.reasoning_token_cost,
        cost_per_web_search=version.cost_per_web_search,
        service_tier=version.service_tier or DEFAULT_TIER,
        tiers=tiers_from_json(version.tiers),
        match_rule=version.match_rule,
    )


def _versions(conn: Connection) -> list[PriceRow]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        rows = session.scalars(select(PriceVersion).order_by(PriceVersion.effective_from, PriceVersion.id))
        return [_row(row) for row in rows]


def _latest_by_key(versions: list[PriceRow], source: str | None = None) -> dict[PriceKey, PriceRow]:
    latest: dict[PriceKey, PriceRow] = {}
    for version in versions:  # ordered by (effective_from, id)
        if source is None or version.source == source:
            latest[version.key] = version
    return latest


def _lock_prices(conn: Connection) -> None:
    """Serialise price writers on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))


def _insert_version(conn: Connection, **values: object) -> int:
    values.setdefault("created_at", datetime.now(UTC))
    values.setdefault("currency", "USD")
    values.setdefault("retired", False)
    if not isinstance(values.get("tiers"), str | None):
        values["tiers"] = tiers_to_json(values["tiers"])  # type: ignore[arg-type]
    return int(conn.execute(insert(PriceVersion).returning(PriceVersion.id), values).scalar_one())


def _pair(row: PriceRow) -> tuple[Decimal, Decimal]:
    return (row.input_token_cost, row.output_token_cost)


def _describe(before: tuple[Decimal, Decimal] | None, after: tuple[Decimal, Decimal]) -> str:
    new = f"input {format_per_million(after[0])}, output {format_per_million(after[1])}"
    if before is None:
        return new
    changed = [
        f"{name} {format_per_million(old)} -> {format_per_million(value)}"
        for name, old, value in (("input", before[0], after[0]), ("output", before[1], after[1]))
        if old != value
    ]  # only what changed: "output $4.00 -> $4.00" says nothing
    return ", ".join(changed) or new


def all_versions(engine: Engine) -> list[PriceRow]:
    with engine.connect() as conn:
        return _versions(conn)


def _tier_order(tier: str) -> int:
    return SERVICE_TIERS.index(tier) if tier in SERVICE_TIERS else len(SERVICE_TIERS)


def current_prices(engine: Engine, at: datetime | None = None, provider: str | None = None) -> list[PriceRow]:
    """The version of each (provider, model, service tier) in force at ``at`` (default now), retired left out."""
    moment = at or datetime.now(UTC)
    wanted = normalize_provider(provider) if provider else None
    in_force = _latest_by_key([v for v in all_versions(engine) if v.effective_from <= moment])
    return sorted(
        (v for v in in_force.values() if not v.retired and (wanted is None or v.provider == wanted)),
        key=lambda v: (v.provider, v.model_name.lower(), _tier_order(v.service_tier)),
    )


def model_history(engine: Engine, provider: str, model_name: str) -> list[PriceRow]:
    """Every version of one model, every service tier, oldest first (by when each takes effect)."""
    provider_key, model_key = normalize_provider(provider), model_name.strip().lower()
    return [v for v in all_versions(engine) if v.provider == provider_key and v.model_name.lower() == model_key]


@dataclass(frozen=True)
class PriceChange:
    """One line of the history: a version and the one it replaced."""

    version: PriceRow
    previous: PriceRow | None


def price_history(engine: Engine) -> list[PriceChange]:
    """Every version, newest first, each with the version it replaced (old -> new)."""
    changes: list[PriceChange] = []
    previous: dict[PriceKey, PriceRow] = {}
    for version in all_versions(engine):
        changes.append(PriceChange(version, previous.get(version.key)))
        previous[version.key] = version
    return sorted(changes, key=lambda c: (c.version.created_at, c.version.id), reverse=True)


def version_json(row: PriceRow) -> dict[str, object]:
    """A version for ``--json``: money as decimal strings, per token."""
    out: dict[str, object] = {
        "id": row.id,
        "provider": row.provider,
        "model": row.model_name,
        "service_tier": row.service_tier,
    }
    for column in RATE_COLUMNS:
        value = row.rate(column)
        out[column] = None if value is None else to_text(value)
    out["tiers"] = [t.as_json() for t in row.tiers]
    out.update(
        effective_from=row.effective_from.isoformat(),
        retired=row.retired,
        source=row.source,
        changed_by=row.changed_by,
        note=row.note,
        created_at=row.created_at.isoformat(),
    )
    return out
