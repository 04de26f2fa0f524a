"""The price table: seeding from the catalog and environment, edits, imports, retirement, history.

Every change is a new version (``effective_from``); no row is ever updated or
deleted, so what a call was priced with stays visible. A price's key is
(provider, model name lower-cased, service tier). The first version of a key,
from any source, is in force from the beginning of time unless its editor
picks a date; a later one from when it is saved, or from the chosen date.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from core import config
from core.catalog import CatalogPrice, load_catalog
from core.db import run_write
from core.models import PriceVersion
from core.money import (
    MAX_REQUEST_PRICE,
    MAX_TOKEN_PRICE,
    MoneyError,
    format_per_million,
    format_usd,
    parse_amount,
    per_million,
    per_token,
    to_text,
)
from core.pricing import PricingError, clean_name, normalize_provider, price_book
from core.times import BEGINNING_OF_TIME

HUGGINGFACE = "huggingface"
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
DEFAULT_TIER = "standard"
LOOKS_PER_TOKEN = Decimal("0.001")  # per 1M tokens: below this, a typed value is likely a per-token price
BIG_CHANGE = Decimal(100)  # a value that moves a price by more than this factor, either way, asks for confirmation

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


def initialize_default_pricing(engine: Engine, catalog: list[CatalogPrice] | None = None) -> list[str]:
    """Seed the catalog and apply environment prices; idempotent; returns what changed.

    A catalog or environment value is applied only when it differs from the last
    value applied from that same source, so a form edit survives a restart until
    the catalog or the variable itself changes. Environment values are read (and
    validated) before anything is written.
    """
    catalog = load_catalog() if catalog is None else catalog
    env_targets = _env_targets(catalog)

    def work(conn: Connection) -> list[str]:
        _lock_prices(conn)
        now = datetime.now(UTC)
        versions = _versions(conn)
        current = _latest_by_key(versions)
        last_catalog = _latest_by_key(versions, "catalog")
        last_env = _latest_by_key(versions, "env")
        changes: list[str] = []
        fresh: set[tuple[str, str, str]] = set()
        added = 0
        for item in catalog:
            key = _key(item.provider, item.model_name)
            values = dict(
                provider=item.provider,
                model_name=item.model_name,
                input_token_cost=item.input_token_cost,
                output_token_cost=item.output_token_cost,
                cached_input_token_cost=item.cached_input_token_cost,
                cost_per_request=item.cost_per_request,
                source="catalog",
                changed_by="catalog",
                note=f"{item.source} ({item.as_of}) {item.note}".strip(),
            )
            if key not in current:
                _insert_version(conn, effective_from=BEGINNING_OF_TIME, **values)
                fresh.add(key)
                added += 1
                continue
            previous = last_catalog.get(key)
            catalog_values = (
                item.input_token_cost,
                item.output_token_cost,
                item.cached_input_token_cost,
                item.cost_per_request,
            )
            if previous is None or catalog_values != (
                previous.input_token_cost,
                previous.output_token_cost,
                previous.cached_input_token_cost,
                previous.cost_per_request,
            ):
                _insert_version(conn, effective_from=now, **values)
                changes.append(
                    f"{item.provider}/{item.model_name}: catalog price now {_describe(None, catalog_values[:2])}"
                )
        if added:
            changes.insert(0, f"added {added} catalog prices")
        seeded = {_key(c.provider, c.model_name): (c.input_token_cost, c.output_token_cost) for c in catalog}
        for (provider, model_name), env in env_targets.items():
            key = _key(provider, model_name)
            wanted = (env.input_token_cost, env.output_token_cost)
            previous_env = last_env.get(key)
            if previous_env is not None:
                if _pair(previous_env) == wanted:
                    continue
            elif seeded.get(key) == wanted:
                continue
            base = _latest_by_key(_versions(conn)).get(key)
            before = _pair(base) if base is not None else None
            _insert_version(
                conn,
                provider=provider,
                model_name=model_name,
                input_token_cost=wanted[0],
                output_token_cost=wanted[1],
                cached_input_token_cost=base.cached_input_token_cost if base else None,
                cost_per_request=base.cost_per_request if base else None,
                # the environment sets input and output; every other rate, the tiers and the
                # match rule stay as the version it replaces has them
                cache_write_token_cost=base.cache_write_token_cost if base else None,
                cache_write_1h_token_cost=base.cache_write_1h_token_cost if base else None,
                reasoning_token_cost=base.reasoning_token_cost if base else None,
                cost_per_web_search=base.cost_per_web_search if base else None,
                tiers=tiers_to_json(base.tiers) if base else None,
                match_rule=base.match_rule if base else None,
                effective_from=BEGINNING_OF_TIME if (key in fresh or base is None) else now,
                source="env",
                changed_by="environment",
                note=f"from {env.variables[0]} and {env.variables[1]}",
            )
            changes.append(
                f"{provider}/{model_name}: {_describe(before, wanted)} (from {env.variables[0]}, {env.variables[1]})"
            )
        return changes

    changes = run_write(engine, work)
    if changes:
        price_book(engine).invalidate()
    from core.catalog.sync import sync_package  # the genai-prices catalog, after the shipped rows

    changes.extend(sync_package(engine).lines())
    return changes


def _env_targets(catalog: list[CatalogPrice]) -> dict[tuple[str, str], config.EnvPrice]:
    """Which rows each environment price applies to: HuggingFace's catalog rows, and
    ``<PROVIDER>_...`` pairs to that provider's ``default`` row."""
    targets: dict[tuple[str, str], config.EnvPrice] = {}
    huggingface = config.env_price(HUGGINGFACE)
    assert huggingface is not None  # HuggingFace always has the seed's defaults
    for item in catalog:
        if item.provider == HUGGINGFACE:
            targets[(item.provider, item.model_name)] = huggingface
    for provider in config.env_priced_providers():
        if provider in config.SHARES_HUGGINGFACE_VARIABLES:
            continue
        env = config.env_price(provider)
        if env is not None:
            targets[(provider, "default")] = env
    return targets


@dataclass(frozen=True)
class PriceEdit:
    """A price as an editor enters it: token rates in USD per 1M tokens, as text.

    ``tiers``: a JSON text or a list of ``{"above_input_tokens": N, "<field>_per_1m": value}``
    in the same units as the form (per 1M tokens; per search and per call as they are).
    """

    provider: str
    model_name: str
    input_per_1m: str
    output_per_1m: str
    cached_input_per_1m: str = ""
    cost_per_request: str = ""
    changed_by: str = "admin"
    note: str = ""
    effective_from: datetime | None = None
    cache_write_per_1m: str = ""
    cache_write_1h_per_1m: str = ""
    reasoning_per_1m: str = ""
    cost_per_web_search: str = ""
    service_tier: str = DEFAULT_TIER
    tiers: str | Sequence[Mapping[str, object]] = ""


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _places(value: object) -> int:
    """Decimal places of a number given as text, int or Decimal (0 when it is not one)."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return 0
    if not amount.is_finite() or amount == 0:
        return 0
    return max(0, -int(amount.normalize().as_tuple().exponent))


def _rate(value: object, spec: RateField, name: str, field_id: str, per_1m: bool) -> Decimal | None:
    """One rate, checked; ``per_1m``: token rates are given per 1M tokens (the form) and stored per token."""
    if _is_empty(value) and not spec.required:
        return None
    scaled = per_1m and spec.per_token
    if scaled and _places(value) > 6:
        raise PriceEditError(
            field_id,
            f"{name}: {value!r} has more than 6 decimal places per 1M tokens "
            "(finer than 1e-12 USD per token, the smallest price stored)",
        )
    if spec.per_token:
        maximum = MAX_TOKEN_PRICE * 1_000_000 if per_1m else MAX_TOKEN_PRICE
    else:
        maximum = MAX_REQUEST_PRICE
    try:
        amount = parse_amount(value, name, maximum=maximum)
    except MoneyError as exc:
        raise PriceEditError(field_id, str(exc)) from None
    return per_token(amount) if scaled else amount


def _threshold(value: object, where: str, field_id: str) -> int:
    if isinstance(value, bool) or value is None:
        raise PriceEditError(field_id, f"{where}: above_input_tokens {value!r} is not a whole number of tokens")
    if isinstance(value, Decimal | float):
        if not Decimal(str(value)).is_finite() or value != int(value):
            raise PriceEditError(field_id, f"{where}: above_input_tokens {value!r} is not a whole number of tokens")
        value = int(value)
    if isinstance(value, str):
        stripped = value.strip().replace(",", "")
        if not (stripped.isascii() and stripped.lstrip("-").isdigit()):
            raise PriceEditError(field_id, f"{where}: above_input_tokens {value!r} is not a whole number of tokens")
        value = int(stripped)
    if not isinstance(value, int):
        raise PriceEditError(field_id, f"{where}: above_input_tokens {value!r} is not a whole number of tokens")
    if value < 0:
        raise PriceEditError(field_id, f"{where}: above_input_tokens {value} is negative")
    if value > 10**12:
        raise PriceEditError(field_id, f"{where}: above_input_tokens {value} is above the limit of 10^12 tokens")
    return value


def _validate_tiers(value: object, per_1m: bool, label: str) -> tuple[PriceTier, ...]:
    """A tier list: thresholds strictly increasing, each once; a tier names only rate fields."""
    field_id = "tiers"
    if _is_empty(value):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise PriceEditError(field_id, f"{label}: not JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise PriceEditError(
            field_id, f'{label}: expected a list of tiers like [{{"above_input_tokens": 200000, ...}}]'
        )
    names = {(f.edit if per_1m else f.column): f for f in RATE_FIELDS}
    tiers: list[PriceTier] = []
    for number, item in enumerate(value, start=1):
        where = f"{label}: tier {number}"
        if not isinstance(item, Mapping):
            raise PriceEditError(field_id, f"{where}: {item!r} is not an object")
        unknown = sorted(str(k) for k in item if k != "above_input_tokens" and k not in names)
        if unknown:
            raise PriceEditError(
                field_id,
                f"{where}: unknown field(s) {', '.join(unknown)} (a tier names above_input_tokens and "
                f"rate fields only: {', '.join(names)})",
            )
        if "above_input_tokens" not in item:
            raise PriceEditError(field_id, f"{where}: above_input_tokens is missing")
        threshold = _threshold(item["above_input_tokens"], where, field_id)
        rates = []
        for name, spec in names.items():
            if _is_empty(item.get(name)):
                continue
            shown = spec.label if per_1m else name
            amount = _rate(
                item[name], RateField(spec.column, name, shown, spec.per_token), f"{where}: {shown}", field_id, per_1m
            )
            assert amount is not None
            rates.append((spec.column, amount))
        if not rates:
            raise PriceEditError(field_id, f"{where}: above {threshold:,} input tokens names no rate")
        if tiers and threshold == tiers[-1].above_input_tokens:
            raise PriceEditError(field_id, f"{where}: threshold {threshold:,} appears twice (each threshold once)")
        if tiers and threshold < tiers[-1].above_input_tokens:
            raise PriceEditError(
                field_id,
                f"{where}: threshold {threshold:,} comes after {tiers[-1].above_input_tokens:,}; "
                "thresholds must be strictly increasing",
            )
        order = {c: i for i, c in enumerate(RATE_COLUMNS)}
        tiers.append(PriceTier(threshold, tuple(sorted(rates, key=lambda r: order[r[0]]))))
    return tuple(tiers)


def _validate_names(provider: object, model_name: object, service_tier: object, labels: Mapping[str, str]) -> dict:
    try:
        provider_clean = normalize_provider(clean_name(provider, "provider"))
    except PricingError as exc:
        raise PriceEditError("provider", f"{labels['provider']}:{str(exc).split(':', 1)[1]}") from None
    try:
        model_clean = clean_name(model_name, "model")
    except PricingError as exc:
        raise PriceEditError("model", f"{labels['model']}:{str(exc).split(':', 1)[1]}") from None
    tier = DEFAULT_TIER if _is_empty(service_tier) else service_tier
    tier = tier.strip().lower() if isinstance(tier, str) else tier
    if tier not in SERVICE_TIERS:
        raise PriceEditError(
            "service_tier", f"{labels['service_tier']}: {service_tier!r} is not one of {', '.join(SERVICE_TIERS)}"
        )
    return dict(provider=provider_clean, model_name=model_clean, service_tier=tier)


def _validate_text(changed_by: object, note: object, labels: Mapping[str, str]) -> dict:
    who = changed_by.strip() if isinstance(changed_by, str) else ""
    if not who or len(who) > 100:
        raise PriceEditError("changed_by", f"{labels['changed_by']}: {who[:40]!r} must be 1 to 100 characters")
    if note is not None and not isinstance(note, str):
        raise PriceEditError("note", f"{labels['note']}: {note!r} is not text")
    note_text = (note or "").strip()
    if len(note_text) > 2000:
        raise PriceEditError("note", f"{labels['note']}: {len(note_text)} characters, over the limit of 2000")
    return dict(changed_by=who, note=note_text or None)


def validate_edit(edit: PriceEdit) -> dict[str, object]:
    """Server-side checks of an edit, whatever the widget allowed; returns column values (per token)."""
    values = _validate_names(edit.provider, edit.model_name, edit.service_tier, LABELS)
    for spec in RATE_FIELDS:
        values[spec.column] = _rate(getattr(edit, spec.edit), spec, spec.label, spec.edit, per_1m=True)
    values["tiers"] = _validate_tiers(edit.tiers, True, LABELS["tiers"])
    values.update(_validate_text(edit.changed_by, edit.note, LABELS))
    if edit.effective_from is not None and edit.effective_from.tzinfo is None:
        raise PriceEditError("effective_from", f"{LABELS['effective_from']}: {edit.effective_from} has no time zone")
    return values


# --- planning a version: first-version rule, nothing changed, big changes ----------------------------


@dataclass(frozen=True)
class BigChange:
    """A field whose new value moves the price by more than 100x either way."""

    label: str
    before: Decimal
    after: Decimal
    per_token: bool

    @property
    def factor(self) -> Decimal:
        return self.after / self.before if self.after > self.before else self.before / self.after

    @property
    def factor_text(self) -> str:
        return f"{self.factor:,.0f}x"

    def describe(self) -> str:
        show = format_per_million if self.per_token else format_usd
        way = "higher" if self.after > self.before else "lower"
        return f"{self.label}: {show(self.before)} -> {show(self.after)} ({self.factor_text} {way})"


@dataclass(frozen=True)
class PricePlan:
    """What saving an edit would do, worked out before anything is written."""

    key: PriceKey
    values: dict[str, object]
    effective_from: datetime
    first_version: bool
    previous: PriceRow | None  # the version of the key in force at ``effective_from``
    unchanged: bool
    big_changes: tuple[BigChange, ...] = field(default=())

    @property
    def label(self) -> str:
        provider, model_name, tier = self.values["provider"], self.values["model_name"], self.key[2]
        return f"{provider}/{model_name}" + ("" if tier == DEFAULT_TIER else f" ({tier})")


def _big_changes(previous: PriceRow | None, values: Mapping[str, object]) -> tuple[BigChange, ...]:
    if previous is None or previous.retired:
        return ()
    changes = []
    for spec in RATE_FIELDS:
        after = values.get(spec.column)
        if after is None:
            continue
        before = previous.effective_rate(spec.column)
        assert isinstance(after, Decimal)
        if before > 0 and after > 0 and (after > before * BIG_CHANGE or after * BIG_CHANGE < before):
            changes.append(BigChange(spec.label, before, after, spec.per_token))
    return tuple(changes)


def _plan(versions: Sequence[PriceRow], values: dict[str, object], chosen: datetime | None, now: datetime) -> PricePlan:
    """``versions``: every version of the key, ordered by (effective_from, id)."""
    key = _key(str(values["provider"]), str(values["model_name"]), str(values["service_tier"]))
    first = not versions
    effective_from = chosen if chosen is not None else (BEGINNING_OF_TIME if first else now)
    previous = None
    for version in versions:
        if version.effective_from <= effective_from:
            previous = version
    unchanged = previous is not None and not previous.retired and _signature(previous) == _signature(values)
    if versions and values["model_name"] != versions[-1].model_name:
        values = values | {"model_name": versions[-1].model_name}  # one spelling per key
    return PricePlan(key, values, effective_from, first, previous, unchanged, _big_changes(previous, values))


def _versions_of(conn: Connection, key: PriceKey) -> list[PriceRow]:
    return [v for v in _versions(conn) if v.key == key]


def plan_price(engine: Engine, edit: PriceEdit, now: datetime | None = None) -> PricePlan:
    """What ``save_price`` would do with ``edit`` (raises ``PriceEditError`` as it would)."""
    values = validate_edit(edit)
    key = _key(str(values["provider"]), str(values["model_name"]), str(values["service_tier"]))
    with engine.connect() as conn:
        versions = _versions_of(conn, key)
    return _plan(versions, values, edit.effective_from, now or datetime.now(UTC))


def _write(conn: Connection, plan: PricePlan, source: str) -> int | None:
    if plan.unchanged:
        return None
    carried = plan.previous.match_rule if plan.previous is not None else None
    return _insert_version(conn, effective_from=plan.effective_from, source=source, match_rule=carried, **plan.values)


def save_price(engine: Engine, edit: PriceEdit) -> int | None:
    """Save an edit as a new price version; returns its id, or ``None`` when nothing changed.

    The first version of a key is in force from the beginning of time, a later one from
    now, unless the edit names a time. Values equal to the version in force at that time
    (names compared without case) write nothing.
    """
    values = validate_edit(edit)
    key = _key(str(values["provider"]), str(values["model_name"]), str(values["service_tier"]))

    def work(conn: Connection) -> int | None:
        _lock_prices(conn)
        return _write(conn, _plan(_versions_of(conn, key), values, edit.effective_from, datetime.now(UTC)), "form")

    new_id = run_write(engine, work)
    if new_id is not None:
        price_book(engine).invalidate()
    return new_id


# --- importing versions from a file (see core.price_files for the reading) --------------------------


FILE_FIELDS = ("provider", "model", *RATE_COLUMNS, "service_tier", "tiers", "effective_from", "note", "changed_by")
REQUIRED_FILE_FIELDS = ("provider", "model", "input_token_cost", "output_token_cost")


@dataclass(frozen=True)
class ImportedVersion:
    """One checked line of a price file: column values (per token) and the time it names, if any."""

    line: int
    values: dict[str, object]
    effective_from: datetime | None


def parse_effective_from(value: object, name: str = "effective_from") -> datetime:
    """ISO 8601, UTC where no offset is given; any time from 1970 on (future changes are allowed)."""
    if not isinstance(value, str) or not value.strip():
        raise PriceEditError("effective_from", f"{name}: {value!r} is not an ISO 8601 time")
    stripped = value.strip()
    if stripped[-1:] in ("z", "Z"):
        stripped = stripped[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise PriceEditError(
            "effective_from", f"{name}: {value!r} is not an ISO 8601 time (e.g. 2025-06-30T00:00:00Z)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment < BEGINNING_OF_TIME:
        raise PriceEditError("effective_from", f"{name}: {value!r} is before 1970-01-01")
    return moment


def check_file_version(line: int, raw: Mapping[str, object]) -> ImportedVersion:
    """A line of a price file (rates per token, as stored); raises ``PriceEditError`` naming the field."""
    unknown = sorted(str(k) for k in raw if k not in FILE_FIELDS)
    if unknown:
        raise PriceEditError(unknown[0], f"unknown field(s) {', '.join(unknown)} (known: {', '.join(FILE_FIELDS)})")
    for name in REQUIRED_FILE_FIELDS:
        if _is_empty(raw.get(name)):
            raise PriceEditError(name, f"{name}: missing (a value is required)")
    names = {k: k for k in ("provider", "model", "service_tier", "changed_by", "note", "tiers")}
    values = _validate_names(raw.get("provider"), raw.get("model"), raw.get("service_tier"), names)
    for spec in RATE_FIELDS:
        values[spec.column] = _rate(raw.get(spec.column), spec, spec.column, spec.column, per_1m=False)
    values["tiers"] = _validate_tiers(raw.get("tiers"), False, "tiers")
    values.update(_validate_text(raw.get("changed_by") or "import", raw.get("note"), names))
    chosen = None if _is_empty(raw.get("effective_from")) else parse_effective_from(raw.get("effective_from"))
    return ImportedVersion(line, values, chosen)


@dataclass
class PriceImportResult:
    taken: list[int] = field(default_factory=list)  # ids of the new versions
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


def import_versions(engine: Engine, lines: Iterable[ImportedVersion]) -> PriceImportResult:
    """Write checked versions in file order, all in one transaction (source ``import``).

    Each key's first version (in the table or earlier in the file) without a time is
    in force from the beginning of time; a line equal to the version in force is skipped.
    """
    items = list(lines)
    result = PriceImportResult()

    def work(conn: Connection) -> None:
        _lock_prices(conn)
        now = datetime.now(UTC)
        by_key: dict[PriceKey, list[PriceRow]] = {}
        for version in _versions(conn):
            by_key.setdefault(version.key, []).append(version)
        for item in items:
            key = _key(str(item.values["provider"]), str(item.values["model_name"]), str(item.values["service_tier"]))
            versions = by_key.setdefault(key, [])
            plan = _plan(versions, item.values, item.effective_from, now)
            new_id = _write(conn, plan, "import")
            if new_id is None:
                result.unchanged += 1
                continue
            result.taken.append(new_id)
            versions.append(_placeholder(new_id, plan, now))
            versions.sort(key=lambda v: (v.effective_from, v.id))

    if items:
        run_write(engine, work)
    if result.taken:
        price_book(engine).invalidate()
    return result


def _placeholder(new_id: int, plan: PricePlan, now: datetime) -> PriceRow:
    """The version just written, as later lines of the same file see it."""
    v = plan.values
    return PriceRow(
        new_id,
        str(v["provider"]),
        str(v["model_name"]),
        v["input_token_cost"],  # type: ignore[arg-type]
        v["output_token_cost"],  # type: ignore[arg-type]
        v["cached_input_token_cost"],  # type: ignore[arg-type]
        v["cost_per_request"],  # type: ignore[arg-type]
        plan.effective_from,
        False,
        "import",
        v.get("changed_by"),  # type: ignore[arg-type]
        v.get("note"),  # type: ignore[arg-type]
        now,
        cache_write_token_cost=v["cache_write_token_cost"],  # type: ignore[arg-type]
        cache_write_1h_token_cost=v["cache_write_1h_token_cost"],  # type: ignore[arg-type]
        reasoning_token_cost=v["reasoning_token_cost"],  # type: ignore[arg-type]
        cost_per_web_search=v["cost_per_web_search"],  # type: ignore[arg-type]
        service_tier=str(v["service_tier"]),
        tiers=tuple(v["tiers"]),  # type: ignore[arg-type]
    )


def retire_model(
    engine: Engine,
    provider: str,
    model_name: str,
    changed_by: str,
    note: str = "",
    effective_from: datetime | None = None,
    service_tier: str = DEFAULT_TIER,
) -> int:
    """Stop a price from a date on (a retirement version); nothing is deleted.

    Calls after that date fall through to the next step of the lookup chain.
    """
    key = _key(provider, model_name, service_tier)

    def work(conn: Connection) -> int:
        _lock_prices(conn)
        current = _latest_by_key(_versions(conn)).get(key)
        if current is None or current.retired:
            raise PriceEditError(
                "model_name", f"{LABELS['model']}: {key[0]}/{model_name} ({key[2]}) has no active price to retire"
            )
        return _insert_version(
            conn,
            provider=current.provider,
            model_name=current.model_name,
            service_tier=current.service_tier,
            **{c: current.rate(c) for c in RATE_COLUMNS},
            tiers=current.tiers,
            match_rule=current.match_rule,
            effective_from=effective_from or datetime.now(UTC),
            retired=True,
            source="form",
            changed_by=changed_by,
            note=note or "retired",
        )

    new_id = run_write(engine, work)
    price_book(engine).invalidate()
    return new_id


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


def unit_preview(value: object, per_token_field: bool = True) -> str:
    """What a typed per-1M value means per token (and back), for the form's live caption."""
    if _is_empty(value):
        return ""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return "not a number"
    if not amount.is_finite() or amount < 0:
        return "not a price"
    if not per_token_field:
        return format_usd(amount)
    both = f"{format_usd(per_million(per_token(amount)))} per 1M tokens = ${to_text(per_token(amount))} per token"
    if 0 < amount < LOOKS_PER_TOKEN:
        both += " (a per-token price? this field is per 1M tokens)"
    return both
