"""The price lookup chain and the cost formula.

For (provider, model, time) the first hit wins: ``exact`` model name, ``short``
name (no ``org/`` prefix, no ``:route`` suffix), the provider's ``default`` row,
the provider's environment variables (``env``), then the ``estimate`` of USD 1
per 1M tokens. ``cost_input = uncached * input_rate + cached * cached_rate``,
``cost_output = output * output_rate``, ``cost_total`` adds the two and any price
per request. Arithmetic is in whole pico-dollars, so every cost is exact.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, func, select

from core import config
from core.models import PriceVersion
from core.money import format_usd, from_pico, to_pico, to_text
from core.times import BEGINNING_OF_TIME

ESTIMATE_PER_TOKEN = Decimal("0.000001")  # USD 1 per 1M tokens
MATCH_STEPS = ("exact", "short", "default", "env", "estimate")
MAX_TOKENS = 10**12
# The largest cost one call may have: 2^63-1 pico-dollars (about USD 9.2 million), what
# SQLite's 64-bit integer holds. No real call comes near it; one that does is bad input.
MAX_CALL_COST_PICO = 2**63 - 1


class PricingError(ValueError):
    """Bad input to a cost calculation; the message names the field and the value."""


def normalize_provider(provider: str) -> str:
    return provider.strip().lower()


def short_name(model: str) -> str:
    """``openai/gpt-oss-120b:groq`` -> ``gpt-oss-120b``."""
    name = model.strip().rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


@dataclass(frozen=True)
class Price:
    """A price version as the lookup uses it; rates are USD per token."""

    pricing_id: int | None
    provider: str
    model_name: str
    input_token_cost: Decimal
    output_token_cost: Decimal
    cached_input_token_cost: Decimal | None
    cost_per_request: Decimal | None
    effective_from: datetime | None
    source: str
    retired: bool = False
    # whole pico-dollars, precomputed for the hot path
    input_pico: int = field(init=False, repr=False, compare=False)
    output_pico: int = field(init=False, repr=False, compare=False)
    cached_pico: int = field(init=False, repr=False, compare=False)
    request_pico: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cached = self.cached_input_token_cost
        object.__setattr__(self, "input_pico", to_pico(self.input_token_cost))
        object.__setattr__(self, "output_pico", to_pico(self.output_token_cost))
        object.__setattr__(self, "cached_pico", to_pico(cached if cached is not None else self.input_token_cost))
        object.__setattr__(self, "request_pico", to_pico(self.cost_per_request or Decimal(0)))

    @classmethod
    def from_row(cls, row: PriceVersion) -> Price:
        return cls(
            pricing_id=row.id,
            provider=row.provider,
            model_name=row.model_name,
            input_token_cost=row.input_token_cost,
            output_token_cost=row.output_token_cost,
            cached_input_token_cost=row.cached_input_token_cost,
            cost_per_request=row.cost_per_request,
            effective_from=row.effective_from,
            source=row.source,
            retired=row.retired,
        )


ESTIMATE_PRICE = Price(None, "*", "*", ESTIMATE_PER_TOKEN, ESTIMATE_PER_TOKEN, None, None, None, "estimate")


@dataclass(frozen=True)
class PriceMatch:
    """Which step of the chain matched, the price it gave, and why, in words."""

    matched_by: str
    price: Price
    reason: str


@dataclass(frozen=True)
class CostBreakdown:
    """A call's cost, every figure exact, with the price that produced it."""

    provider: str
    model: str
    matched_by: str
    pricing_id: int | None
    reason: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    input_token_cost: Decimal
    output_token_cost: Decimal
    cached_input_token_cost: Decimal
    cost_per_request: Decimal
    cost_input: Decimal
    cost_output: Decimal
    cost_total: Decimal
    price_effective_from: datetime | None


def validate_tokens(value: object, field_name: str) -> int:
    """A token count: a whole number from 0 to 10^12 (not a bool, not a float)."""
    if isinstance(value, bool):
        raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
    if isinstance(value, float):
        if not value.is_integer():
            raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()):
            raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
        value = int(text)
    if not isinstance(value, int):
        raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
    if value < 0:
        raise PricingError(f"{field_name}: {value} is negative")
    if value > MAX_TOKENS:
        raise PricingError(f"{field_name}: {value} is above the limit of {MAX_TOKENS:,} tokens")
    return value


class PriceIndex:
    """Every price version in memory, by (provider, model name), ordered by time."""

    def __init__(self, prices: list[Price]) -> None:
        grouped: dict[tuple[str, str], list[Price]] = {}
        for price in prices:
            key = (normalize_provider(price.provider), price.model_name.strip().lower())
            grouped.setdefault(key, []).append(price)
        self._versions: dict[tuple[str, str], tuple[list[float], list[Price]]] = {}
        for key, versions in grouped.items():
            versions.sort(key=lambda p: (_epoch(p.effective_from), p.pricing_id or 0))
            self._versions[key] = ([_epoch(p.effective_from) for p in versions], versions)
        self.providers = sorted({key[0] for key in self._versions})
        self._short_cache: dict[str, str] = {}

    def version_at(self, provider: str, model_name: str, at: datetime) -> Price | None:
        """The version in force at ``at`` (retired ones included), or ``None``."""
        entry = self._versions.get((provider, model_name.lower()))
        if entry is None:
            return None
        times, versions = entry
        position = bisect_right(times, at.timestamp()) - 1
        return versions[position] if position >= 0 else None

    def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return sorted(
            (p, versions[-1].model_name)
            for (p, _m), (_t, versions) in self._versions.items()
            if provider is None or p == normalize_provider(provider)
        )

    def lookup(self, provider: str, model: str, at: datetime) -> PriceMatch:
        provider = normalize_provider(provider)
        candidates = [("exact", model.strip())]
        short = self._short_cache.get(model)
        if short is None:
            short = self._short_cache.setdefault(model, short_name(model))
        if short.lower() != model.strip().lower():
            candidates.append(("short", short))
        candidates.append(("default", "default"))
        retired_note = ""
        for step, name in candidates:
            price = self.version_at(provider, name, at)
            if price is None:
                continue
            if price.retired:
                retired_note = f" ({provider}/{name} retired since {price.effective_from:%Y-%m-%d})"
                continue
            return PriceMatch(step, price, _reason(step, provider, name, price) + retired_note)
        env = config.env_price(provider)
        if env is not None:
            price = Price(None, provider, "env", env.input_token_cost, env.output_token_cost, None, None, None, "env")
            return PriceMatch(
                "env",
                price,
                f"no price row for {provider}/{model}; from the environment "
                f"({env.variables[0]}, {env.variables[1]}){retired_note}",
            )
        return PriceMatch(
            "estimate",
            ESTIMATE_PRICE,
            f"no price for {provider}/{model} in the table or the "
            f"environment; estimated at $1 per 1M tokens{retired_note}",
        )


def _reason(step: str, provider: str, name: str, price: Price) -> str:
    if price.effective_from is None or price.effective_from <= BEGINNING_OF_TIME:
        since = "in force from the beginning"
    else:
        since = f"since {price.effective_from:%Y-%m-%d %H:%M} UTC"
    where = {"exact": "the exact model name", "short": "the short model name", "default": "the provider's default row"}[
        step
    ]
    return f"price row #{price.pricing_id} for {provider}/{name}: {where}, source {price.source}, {since}".rstrip(", ")


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


def cost_in_pico(price: Price, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> tuple[int, int, int]:
    """(cost_input, cost_output, cost_total) in whole pico-dollars; the hot path."""
    cost_input = (input_tokens - cached_input_tokens) * price.input_pico + cached_input_tokens * price.cached_pico
    cost_output = output_tokens * price.output_pico
    cost_total = cost_input + cost_output + price.request_pico
    if cost_total > MAX_CALL_COST_PICO:
        raise PricingError(
            f"cost_total: {input_tokens} input and {output_tokens} output tokens at {price.provider}/"
            f"{price.model_name} would cost ${from_pico(cost_total):,}, above the limit of one call "
            f"(${from_pico(MAX_CALL_COST_PICO):,})"
        )
    return cost_input, cost_output, cost_total


def breakdown(
    match: PriceMatch, provider: str, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> CostBreakdown:
    price = match.price
    cost_input, cost_output, cost_total = cost_in_pico(price, input_tokens, output_tokens, cached_input_tokens)
    return CostBreakdown(
        provider=normalize_provider(provider),
        model=model.strip(),
        matched_by=match.matched_by,
        pricing_id=price.pricing_id,
        reason=match.reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        input_token_cost=price.input_token_cost,
        output_token_cost=price.output_token_cost,
        cached_input_token_cost=from_pico(price.cached_pico),
        cost_per_request=price.cost_per_request or Decimal(0),
        cost_input=from_pico(cost_input),
        cost_output=from_pico(cost_output),
        cost_total=from_pico(cost_total),
        price_effective_from=price.effective_from,
    )


def formula_lines(b: CostBreakdown) -> list[str]:
    """The cost written out as in the seed: ``cost_input = 1000 * 0.000001 = $0.001``, ..., ``cost_total = $0.0025``."""
    if b.cached_input_tokens:
        uncached = b.input_tokens - b.cached_input_tokens
        cost_input = (
            f"cost_input = {uncached} * {to_text(b.input_token_cost)} + {b.cached_input_tokens} * "
            f"{to_text(b.cached_input_token_cost)} = {format_usd(b.cost_input)}"
        )
    else:
        cost_input = f"cost_input = {b.input_tokens} * {to_text(b.input_token_cost)} = {format_usd(b.cost_input)}"
    lines = [
        cost_input,
        f"cost_output = {b.output_tokens} * {to_text(b.output_token_cost)} = {format_usd(b.cost_output)}",
    ]
    if b.cost_per_request:
        lines.append(f"cost_per_request = {format_usd(b.cost_per_request)}")
    lines.append(f"cost_total = {format_usd(b.cost_total)}")
    return lines


def validate_call(
    provider: str, model: str, input_tokens: object, output_tokens: object, cached_input_tokens: object = 0
) -> tuple[str, str, int, int, int]:
    """Check a call's names and token counts; returns them cleaned."""
    provider_clean = _name(provider, "provider")
    model_clean = _name(model, "model")
    tokens_in = validate_tokens(input_tokens, "input_tokens")
    tokens_out = validate_tokens(output_tokens, "output_tokens")
    cached = validate_tokens(0 if cached_input_tokens is None else cached_input_tokens, "cached_input_tokens")
    if cached > tokens_in:
        raise PricingError(
            f"cached_input_tokens: {cached} is more than input_tokens ({tokens_in}); "
            "cached tokens are part of the input"
        )
    return normalize_provider(provider_clean), model_clean, tokens_in, tokens_out, cached


NAME_LIMITS = {"provider": 100, "model": 300, "user": 200, "request_id": 200}


def _name(value: object, field_name: str) -> str:
    if not isinstance(value, str):
        raise PricingError(f"{field_name}: {value!r} is not text")
    text = value.strip()
    if not text:
        raise PricingError(f"{field_name}: empty value")
    limit = NAME_LIMITS[field_name]
    if len(text) > limit:
        raise PricingError(f"{field_name}: {text[:40]!r}... is {len(text)} characters, over the limit of {limit}")
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise PricingError(f"{field_name}: {text[:60]!r} contains control characters or invalid bytes")
    return text


def clean_name(value: object, field_name: str) -> str:
    """Public check for user / request_id style names (same rules as provider and model)."""
    return _name(value, field_name)


class PriceBook:
    """The in-memory index for one database, rebuilt when the price table changes.

    The table is append-only, so (row count, highest id) identifies its content;
    one cheap query per unit of work tells whether the index is current, also
    when another process saved a price.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[int, int] | None = None
        self._index = PriceIndex([])

    def index(self, conn: Connection) -> PriceIndex:
        signature = tuple(conn.execute(select(func.count(), func.coalesce(func.max(PriceVersion.id), 0))).one())
        with self._lock:
            if signature != self._signature:
                versions = [Price.from_row(row) for row in _all_versions(conn)]
                self._index = PriceIndex(versions)
                self._signature = signature  # type: ignore[assignment]
            return self._index

    def invalidate(self) -> None:
        with self._lock:
            self._signature = None


def _all_versions(conn: Connection) -> list[PriceVersion]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        return list(session.scalars(select(PriceVersion)))


_books: weakref.WeakKeyDictionary[Engine, PriceBook] = weakref.WeakKeyDictionary()
_books_lock = threading.Lock()


def price_book(engine: Engine) -> PriceBook:
    """The engine's price book (one per engine, so per database)."""
    with _books_lock:
        book = _books.get(engine)
        if book is None:
            book = _books[engine] = PriceBook()
        return book


def now_utc() -> datetime:
    return datetime.now(UTC)


def calculate_cost(
    engine: Engine,
    provider: str,
    model: str,
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object = 0,
    at: datetime | None = None,
) -> CostBreakdown:
    """Price one call at ``at`` (default: now) without recording it."""
    provider_clean, model_clean, tokens_in, tokens_out, cached = validate_call(
        provider, model, input_tokens, output_tokens, cached_input_tokens
    )
    moment = at or now_utc()
    if moment.tzinfo is None:
        raise PricingError(f"at: {moment.isoformat()} has no time zone")
    with engine.connect() as conn:
        index = price_book(engine).index(conn)
    match = index.lookup(provider_clean, model_clean, moment)
    return breakdown(match, provider_clean, model_clean, tokens_in, tokens_out, cached)


def current_index(engine: Engine) -> PriceIndex:
    with engine.connect() as conn:
        return price_book(engine).index(conn)
