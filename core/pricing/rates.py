"""What a price is: the rates of a version, its long-context tiers, service tiers, a call's billable counts."""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from core.money import from_pico, to_pico
from core.storage.tables import PriceVersion

ESTIMATE_PER_TOKEN = Decimal("0.000001")  # USD 1 per 1M tokens


MATCH_STEPS = ("exact", "short", "alias", "default", "env", "estimate")


SERVICE_TIERS = ("standard", "batch", "flex", "priority")


STANDARD = "standard"


# what providers report for the standard tier
SERVICE_TIER_SYNONYMS = {"default": STANDARD, "on_demand": STANDARD}


MAX_TOKENS = 10**12


# The largest cost one call may have: 2^63-1 pico-dollars (about USD 9.2 million), what
# SQLite's 64-bit integer holds. No real call comes near it; one that does is bad input.
MAX_CALL_COST_PICO = 2**63 - 1


# Rate fields of a price version, in the order the formula uses them.
RATE_FIELDS = (
    "input_token_cost",
    "output_token_cost",
    "cached_input_token_cost",
    "cache_write_token_cost",
    "cache_write_1h_token_cost",
    "reasoning_token_cost",
    "cost_per_web_search",
    "cost_per_request",
)


class PricingError(ValueError):
    """Bad input to a cost calculation; the message names the field and the value."""


def normalize_provider(provider: str) -> str:
    return provider.strip().lower()


def short_name(model: str) -> str:
    """``openai/gpt-oss-120b:groq`` -> ``gpt-oss-120b``."""
    name = model.strip().rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def parse_service_tier(value: object, field_name: str = "service_tier") -> str:
    """One of standard, batch, flex, priority (empty: standard; ``default`` as OpenAI reports it: standard)."""
    if value is None:
        return STANDARD
    if not isinstance(value, str):
        raise PricingError(f"{field_name}: {value!r} is not one of {', '.join(SERVICE_TIERS)}")
    text = value.strip().lower()
    if not text:
        return STANDARD
    text = SERVICE_TIER_SYNONYMS.get(text, text)
    if text not in SERVICE_TIERS:
        raise PricingError(f"{field_name}: {value!r} is not one of {', '.join(SERVICE_TIERS)}")
    return text


@dataclass(frozen=True)
class Rates:
    """Every rate of a price as in force for one call, fallbacks applied; whole pico-dollars."""

    input: int
    output: int
    cached: int
    cache_write: int
    cache_write_1h: int
    reasoning: int
    web_search: int
    request: int

    @cached_property
    def as_decimals(self) -> tuple[Decimal, ...]:
        """The rates as USD Decimals, in field order; made once per price and tier, not once per call."""
        return tuple(from_pico(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def resolve(cls, raw: dict[str, Decimal | None]) -> Rates:
        """Fallbacks of DESIGN.md: cached and 5-minute writes take the input rate, 1-hour writes the
        5-minute write rate, reasoning the output rate; per-search and per-call fees default to 0."""

        def pico(name: str) -> int | None:
            value = raw.get(name)
            return None if value is None else to_pico(value)

        base_in = pico("input_token_cost") or 0
        base_out = pico("output_token_cost") or 0
        cached = pico("cached_input_token_cost")
        write = pico("cache_write_token_cost")
        write_1h = pico("cache_write_1h_token_cost")
        reasoning = pico("reasoning_token_cost")
        write_resolved = base_in if write is None else write
        return cls(
            input=base_in,
            output=base_out,
            cached=base_in if cached is None else cached,
            cache_write=write_resolved,
            cache_write_1h=write_resolved if write_1h is None else write_1h,
            reasoning=base_out if reasoning is None else reasoning,
            web_search=pico("cost_per_web_search") or 0,
            request=pico("cost_per_request") or 0,
        )


TierRates = tuple[int, dict[str, Decimal]]  # (above_input_tokens, the rates that tier names)


def parse_tiers(text: str | None) -> list[TierRates]:
    """The stored tiers JSON back to (threshold, rates); validated when saved, trusted here."""
    if not text:
        return []
    tiers: list[TierRates] = []
    for item in json.loads(text):
        threshold = int(item["above_input_tokens"])
        rates = {name: Decimal(str(value)) for name, value in item.items() if name in RATE_FIELDS and value is not None}
        tiers.append((threshold, rates))
    return sorted(tiers, key=lambda t: t[0])


@dataclass(frozen=True)
class Price:
    """A price version as the lookup uses it; rates are USD per token (per search, per call)."""

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
    cache_write_token_cost: Decimal | None = None
    cache_write_1h_token_cost: Decimal | None = None
    reasoning_token_cost: Decimal | None = None
    cost_per_web_search: Decimal | None = None
    service_tier: str = STANDARD
    tiers: tuple[TierRates, ...] = ()
    match_rule: str | None = None
    # precomputed for the hot path: thresholds ascending, rates per threshold (index 0: the base)
    _thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _rates: tuple[Rates, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = {name: getattr(self, name) for name in RATE_FIELDS}
        rates = [Rates.resolve(base)]
        thresholds = []
        for threshold, named in self.tiers:
            merged = dict(base)
            merged.update(named)
            rates.append(Rates.resolve(merged))
            thresholds.append(threshold)
        object.__setattr__(self, "_thresholds", tuple(thresholds))
        object.__setattr__(self, "_rates", tuple(rates))

    def rates_for(self, input_tokens: int) -> tuple[int | None, Rates]:
        """(the tier's above_input_tokens or None, the rates) for a call with that many input tokens."""
        position = bisect_left(self._thresholds, input_tokens)  # thresholds strictly below input_tokens
        if position == 0:
            return None, self._rates[0]
        return self._thresholds[position - 1], self._rates[position]

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
            cache_write_token_cost=row.cache_write_token_cost,
            cache_write_1h_token_cost=row.cache_write_1h_token_cost,
            reasoning_token_cost=row.reasoning_token_cost,
            cost_per_web_search=row.cost_per_web_search,
            service_tier=(row.service_tier or STANDARD).lower(),
            tiers=tuple(parse_tiers(row.tiers)),
            match_rule=row.match_rule,
        )


ESTIMATE_PRICE = Price(None, "*", "*", ESTIMATE_PER_TOKEN, ESTIMATE_PER_TOKEN, None, None, None, "estimate")


@dataclass(frozen=True)
class PriceMatch:
    """Which step of the chain matched, the price it gave, and why, in words."""

    matched_by: str
    price: Price
    reason: str


@dataclass(frozen=True)
class Usage:
    """A call's billable counts, validated (DESIGN.md "A call's usage")."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
