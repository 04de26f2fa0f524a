"""The price table: seeding from the catalog and environment, edits, retirement, history.

Every change is a new version (``effective_from``); no row is ever updated or
deleted, so what a call was priced with stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

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
    parse_amount,
    per_token,
)
from core.pricing import PricingError, clean_name, normalize_provider, price_book
from core.times import BEGINNING_OF_TIME

HUGGINGFACE = "huggingface"


class PriceEditError(ValueError):
    """A refused price edit; ``field`` names the form field, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


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
    )


def _versions(conn: Connection) -> list[PriceRow]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        rows = session.scalars(select(PriceVersion).order_by(PriceVersion.effective_from, PriceVersion.id))
        return [_row(row) for row in rows]


def _latest_by_key(versions: list[PriceRow], source: str | None = None) -> dict[tuple[str, str], PriceRow]:
    latest: dict[tuple[str, str], PriceRow] = {}
    for version in versions:  # ordered by (effective_from, id)
        if source is None or version.source == source:
            latest[(version.provider, version.model_name.lower())] = version
    return latest


def _lock_prices(conn: Connection) -> None:
    """Serialise price writers on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))


def _insert_version(conn: Connection, **values: object) -> int:
    values.setdefault("created_at", datetime.now(UTC))
    values.setdefault("currency", "USD")
    values.setdefault("retired", False)
    return int(conn.execute(insert(PriceVersion).returning(PriceVersion.id), values).scalar_one())


def _pair(row: PriceRow) -> tuple[Decimal, Decimal]:
    return (row.input_token_cost, row.output_token_cost)


def _describe(before: tuple[Decimal, Decimal] | None, after: tuple[Decimal, Decimal]) -> str:
    new = f"input {format_per_million(after[0])}, output {format_per_million(after[1])}"
    if before is None:
        return new
    return (
        f"input {format_per_million(before[0])} -> {format_per_million(after[0])}, "
        f"output {format_per_million(before[1])} -> {format_per_million(after[1])}"
    )


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
        fresh: set[tuple[str, str]] = set()
        added = 0
        for item in catalog:
            key = (item.provider, item.model_name.lower())
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
        seeded = {(c.provider, c.model_name.lower()): (c.input_token_cost, c.output_token_cost) for c in catalog}
        for (provider, model_name), env in env_targets.items():
            key = (provider, model_name.lower())
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
    """A price as an editor enters it: USD per 1M tokens, as text."""

    provider: str
    model_name: str
    input_per_1m: str
    output_per_1m: str
    cached_input_per_1m: str = ""
    cost_per_request: str = ""
    changed_by: str = "admin"
    note: str = ""
    effective_from: datetime | None = None


def _amount(value: str, field: str, maximum: Decimal, optional: bool) -> Decimal | None:
    if optional and not str(value).strip():
        return None
    try:
        return parse_amount(value, field, maximum=maximum)
    except MoneyError as exc:
        raise PriceEditError(field, str(exc)) from None


def validate_edit(edit: PriceEdit) -> dict[str, object]:
    """Server-side checks of an edit, whatever the widget allowed; returns column values."""
    try:
        provider = normalize_provider(clean_name(edit.provider, "provider"))
        model_name = clean_name(edit.model_name, "model")
    except PricingError as exc:
        field = str(exc).split(":", 1)[0]
        raise PriceEditError(field, str(exc)) from None
    per_1m_max = MAX_TOKEN_PRICE * 1_000_000
    input_1m = _amount(edit.input_per_1m, "input_per_1m", per_1m_max, optional=False)
    output_1m = _amount(edit.output_per_1m, "output_per_1m", per_1m_max, optional=False)
    cached_1m = _amount(edit.cached_input_per_1m, "cached_input_per_1m", per_1m_max, optional=True)
    request = _amount(edit.cost_per_request, "cost_per_request", MAX_REQUEST_PRICE, optional=True)
    assert input_1m is not None and output_1m is not None
    values: dict[str, object] = dict(provider=provider, model_name=model_name)
    for field, amount in (
        ("input_token_cost", input_1m),
        ("output_token_cost", output_1m),
        ("cached_input_token_cost", cached_1m),
    ):
        if amount is None:
            values[field] = None
            continue
        rate = per_token(amount)
        if rate.as_tuple().exponent < -12:  # type: ignore[operator]
            raise PriceEditError(
                field.replace("_token_cost", "_per_1m"),
                f"{field.replace('_token_cost', '_per_1m')}: "
                f"{getattr(edit, field.replace('_token_cost', '_per_1m'))!r} per 1M tokens is finer "
                "than 1e-12 USD per token (at most 6 decimal places per 1M)",
            )
        values[field] = rate
    values["cost_per_request"] = request
    changed_by = (edit.changed_by or "").strip()
    if not changed_by or len(changed_by) > 100:
        raise PriceEditError("changed_by", f"changed_by: {changed_by[:40]!r} must be 1 to 100 characters")
    note = (edit.note or "").strip()
    if len(note) > 2000:
        raise PriceEditError("note", f"note: {len(note)} characters, over the limit of 2000")
    values["changed_by"] = changed_by
    values["note"] = note or None
    if edit.effective_from is not None and edit.effective_from.tzinfo is None:
        raise PriceEditError("effective_from", f"effective_from: {edit.effective_from} has no time zone")
    return values


def save_price(engine: Engine, edit: PriceEdit) -> int:
    """Save an edit as a new price version (in force from now or the chosen time); returns its id."""
    values = validate_edit(edit)
    effective_from = edit.effective_from or datetime.now(UTC)

    def work(conn: Connection) -> int:
        _lock_prices(conn)
        return _insert_version(conn, effective_from=effective_from, source="form", **values)

    new_id = run_write(engine, work)
    price_book(engine).invalidate()
    return new_id


def retire_model(
    engine: Engine,
    provider: str,
    model_name: str,
    changed_by: str,
    note: str = "",
    effective_from: datetime | None = None,
) -> int:
    """Stop a price from a date on (a retirement version); nothing is deleted.

    Calls after that date fall through to the next step of the lookup chain.
    """
    provider = normalize_provider(provider)

    def work(conn: Connection) -> int:
        _lock_prices(conn)
        current = _latest_by_key(_versions(conn)).get((provider, model_name.strip().lower()))
        if current is None or current.retired:
            raise PriceEditError("model_name", f"model_name: {provider}/{model_name} has no active price to retire")
        return _insert_version(
            conn,
            provider=provider,
            model_name=current.model_name,
            input_token_cost=current.input_token_cost,
            output_token_cost=current.output_token_cost,
            cached_input_token_cost=current.cached_input_token_cost,
            cost_per_request=current.cost_per_request,
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


def current_prices(engine: Engine, at: datetime | None = None) -> list[PriceRow]:
    """The version of each (provider, model) in force at ``at`` (default now), retired ones left out."""
    moment = at or datetime.now(UTC)
    in_force = _latest_by_key([v for v in all_versions(engine) if v.effective_from <= moment])
    return sorted((v for v in in_force.values() if not v.retired), key=lambda v: (v.provider, v.model_name.lower()))


@dataclass(frozen=True)
class PriceChange:
    """One line of the history: a version and the one it replaced."""

    version: PriceRow
    previous: PriceRow | None


def price_history(engine: Engine) -> list[PriceChange]:
    """Every version, newest first, each with the version it replaced (old -> new)."""
    changes: list[PriceChange] = []
    previous: dict[tuple[str, str], PriceRow] = {}
    for version in all_versions(engine):
        key = (version.provider, version.model_name.lower())
        changes.append(PriceChange(version, previous.get(key)))
        previous[key] = version
    return sorted(changes, key=lambda c: (c.version.created_at, c.version.id), reverse=True)
