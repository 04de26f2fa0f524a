"""Price edits (the form), price files (``prices import``) and retiring a model: each a new version."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, Engine

from core.money import (
    MAX_REQUEST_PRICE,
    MAX_TOKEN_PRICE,
    MoneyError,
    format_exact_usd,
    format_per_million,
    format_usd,
    parse_amount,
    per_million,
    per_token,
    to_text,
)
from core.pricing.lookup import price_book
from core.pricing.rates import PricingError, normalize_provider
from core.pricing.validation import clean_name
from core.pricing.versions import (
    DEFAULT_TIER,
    LABELS,
    RATE_COLUMNS,
    RATE_FIELDS,
    SERVICE_TIERS,
    PriceEditError,
    PriceKey,
    PriceRow,
    PriceTier,
    RateField,
    _insert_version,
    _key,
    _latest_by_key,
    _lock_prices,
    _signature,
    _versions,
)
from core.storage.engine import run_write
from core.times import BEGINNING_OF_TIME

LOOKS_PER_TOKEN = Decimal("0.001")  # per 1M tokens: below this, a typed value is likely a per-token price


BIG_CHANGE = Decimal(100)  # a value that moves a price by more than this factor, either way, asks for confirmation


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


def unit_preview(value: object, spec: RateField) -> str:
    """The form's live caption under a rate: what Save will take, exactly, or what Save will refuse and why.

    It runs the same check as saving (``_rate``), so a value the preview accepts is one Save
    accepts, and the amounts are shown with every digit (``$10,000.000001`` is not ``$10,000.00``).
    """
    if _is_empty(value):
        return "required" if spec.required else ""
    try:
        rate = _rate(value, spec, spec.label, spec.edit, per_1m=True)
    except PriceEditError as refused:
        return f"Save will refuse this: {refused}"
    if rate is None:
        return ""
    if not spec.per_token:
        return format_exact_usd(rate)
    typed = per_million(rate)
    both = f"{format_exact_usd(typed)} per 1M tokens = ${to_text(rate)} per token"
    if 0 < typed < LOOKS_PER_TOKEN:
        both += " (a per-token price? this field is per 1M tokens)"
    return both
