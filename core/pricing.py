"""The price lookup chain and the cost formula.

For (provider, model, time, service tier) the first hit wins: ``exact`` model name,
``short`` name (no ``org/`` prefix, no ``:route`` suffix), ``alias`` (a price row's
match rule, e.g. a dated model id), the provider's ``default`` row, the provider's
environment variables (``env``), then the ``estimate`` of USD 1 per 1M tokens. The
provider's other names (``gemini`` = ``google``) are tried at each step.

The formula (DESIGN.md, "A price version")::

    uncached    = input - cached_input - cache_write - cache_write_1h
    cost_input  = uncached * input + cached_input * cached_input_rate
                + cache_write * cache_write_rate + cache_write_1h * cache_write_1h_rate
    cost_output = (output - reasoning) * output + reasoning * reasoning_rate
    cost_total  = cost_input + cost_output + web_search_calls * per_search + per_request

A long-context tier (the highest ``above_input_tokens`` strictly below the call's
input tokens) replaces the rates it names for the whole call. Arithmetic is in
whole pico-dollars, so every cost is exact.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from core import config
from core.models import PriceVersion
from core.money import format_usd, from_pico, to_pico, to_text
from core.providers import equivalent_providers
from core.times import BEGINNING_OF_TIME

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


@dataclass(frozen=True)
class CostBreakdown:
    """A call's cost, every figure exact, with the price that produced it and every line of the formula.

    The lines are kept in whole pico-dollars and become ``Decimal`` when read (once each), so pricing
    a call builds no Decimal it does not show.
    """

    provider: str
    model: str
    matched_by: str
    pricing_id: int | None
    reason: str
    price_effective_from: datetime | None
    usage: Usage
    cost: PicoCost
    requested_service_tier: str = STANDARD
    service_tier: str = STANDARD  # the tier whose rates were used

    # the call's counts
    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens

    @property
    def cached_input_tokens(self) -> int:
        return self.usage.cached_input_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.usage.cache_write_tokens

    @property
    def cache_write_1h_tokens(self) -> int:
        return self.usage.cache_write_1h_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self.usage.reasoning_tokens

    @property
    def web_search_calls(self) -> int:
        return self.usage.web_search_calls

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens - self.cache_write_tokens - self.cache_write_1h_tokens

    @property
    def tier(self) -> int | None:
        """above_input_tokens of the long-context tier used, or None."""
        return self.cost.tier

    # the rates as in force for the call (inside a tier, the tier's), fallbacks applied
    @property
    def input_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[0]

    @property
    def output_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[1]

    @property
    def cached_input_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[2]

    @property
    def cache_write_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[3]

    @property
    def cache_write_1h_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[4]

    @property
    def reasoning_token_cost(self) -> Decimal:
        return self.cost.rates.as_decimals[5]

    @property
    def cost_per_web_search(self) -> Decimal:
        return self.cost.rates.as_decimals[6]

    @property
    def cost_per_request(self) -> Decimal:
        return self.cost.rates.as_decimals[7]

    # the lines of the formula, USD
    @cached_property
    def cost_input(self) -> Decimal:
        return from_pico(self.cost.cost_input)

    @cached_property
    def cost_output(self) -> Decimal:
        return from_pico(self.cost.cost_output)

    @cached_property
    def cost_total(self) -> Decimal:
        return from_pico(self.cost.cost_total)

    @cached_property
    def cost_uncached_input(self) -> Decimal:
        return from_pico(self.cost.uncached)

    @cached_property
    def cost_cached_input(self) -> Decimal:
        return from_pico(self.cost.cached)

    @cached_property
    def cost_cache_write(self) -> Decimal:
        return from_pico(self.cost.cache_write)

    @cached_property
    def cost_cache_write_1h(self) -> Decimal:
        return from_pico(self.cost.cache_write_1h)

    @cached_property
    def cost_plain_output(self) -> Decimal:
        return from_pico(self.cost.plain_output)

    @cached_property
    def cost_reasoning(self) -> Decimal:
        return from_pico(self.cost.reasoning)

    @cached_property
    def cost_web_search(self) -> Decimal:
        return from_pico(self.cost.web_search)

    @cached_property
    def cost_request(self) -> Decimal:
        return from_pico(self.cost.request)


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


def validate_usage(
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object = 0,
    cache_write_tokens: object = 0,
    cache_write_1h_tokens: object = 0,
    reasoning_tokens: object = 0,
    web_search_calls: object = 0,
) -> Usage:
    """Every count checked, and the parts checked against their wholes, naming the fields."""

    def count(value: object, name: str) -> int:
        return validate_tokens(0 if value is None or value == "" else value, name)

    usage = Usage(
        validate_tokens(input_tokens, "input_tokens"),
        validate_tokens(output_tokens, "output_tokens"),
        count(cached_input_tokens, "cached_input_tokens"),
        count(cache_write_tokens, "cache_write_tokens"),
        count(cache_write_1h_tokens, "cache_write_1h_tokens"),
        count(reasoning_tokens, "reasoning_tokens"),
        count(web_search_calls, "web_search_calls"),
    )
    parts = usage.cached_input_tokens + usage.cache_write_tokens + usage.cache_write_1h_tokens
    if parts > usage.input_tokens:
        named = [
            f"{name} {value}"
            for name, value in (
                ("cached_input_tokens", usage.cached_input_tokens),
                ("cache_write_tokens", usage.cache_write_tokens),
                ("cache_write_1h_tokens", usage.cache_write_1h_tokens),
            )
            if value
        ]
        if len(named) == 1 and usage.cached_input_tokens:
            raise PricingError(
                f"cached_input_tokens: {usage.cached_input_tokens} is more than input_tokens ({usage.input_tokens}); "
                "cached tokens are part of the input"
            )
        raise PricingError(
            f"{' + '.join(n.split()[0] for n in named)}: {' + '.join(n.split()[1] for n in named)} = {parts} is more "
            f"than input_tokens ({usage.input_tokens}); cache reads and writes are part of the input"
        )
    if usage.reasoning_tokens > usage.output_tokens:
        raise PricingError(
            f"reasoning_tokens: {usage.reasoning_tokens} is more than output_tokens ({usage.output_tokens}); "
            "reasoning tokens are part of the output"
        )
    return usage


def match_rule(rule: Any) -> Callable[[str], bool]:
    """A match clause (genai-prices' shape: equals, starts_with, ends_with, contains, regex, or, and) as a test.

    The model name given to the test is lower-cased by the caller.
    """
    if not isinstance(rule, dict) or len(rule) != 1:
        raise ValueError(f"match_rule: {rule!r} is not a match clause")
    ((kind, value),) = rule.items()
    if kind == "equals":
        wanted = str(value).lower()
        return lambda name: name == wanted
    if kind == "starts_with":
        prefix = str(value).lower()
        return lambda name: name.startswith(prefix)
    if kind == "ends_with":
        suffix = str(value).lower()
        return lambda name: name.endswith(suffix)
    if kind == "contains":
        part = str(value).lower()
        return lambda name: part in name
    if kind == "regex":
        pattern = re.compile(str(value))
        return lambda name: pattern.search(name) is not None
    if kind in ("or", "and"):
        tests = [match_rule(item) for item in value]
        if kind == "or":
            return lambda name: any(test(name) for test in tests)
        return lambda name: all(test(name) for test in tests)
    raise ValueError(f"match_rule: unknown clause {kind!r}")


Key = tuple[str, str, str]  # provider, model name lower-cased, service tier
COMPACT_DATE = re.compile(r"-(20\d\d)(\d\d)(\d\d)$")


class PriceIndex:
    """Every price version in memory, by (provider, model name, service tier), ordered by time."""

    def __init__(self, prices: list[Price]) -> None:
        grouped: dict[Key, list[Price]] = {}
        for price in prices:
            key = (normalize_provider(price.provider), price.model_name.strip().lower(), price.service_tier)
            grouped.setdefault(key, []).append(price)
        self._versions: dict[Key, tuple[list[float], list[Price]]] = {}
        rules: dict[str, list[tuple[int, str, Callable[[str], bool]]]] = {}
        for key, versions in grouped.items():
            versions.sort(key=lambda p: (_epoch(p.effective_from), p.pricing_id or 0))
            self._versions[key] = ([_epoch(p.effective_from) for p in versions], versions)
            latest_rule = next((p.match_rule for p in reversed(versions) if p.match_rule), None)
            if latest_rule and key[2] == STANDARD:
                try:
                    test = match_rule(json.loads(latest_rule))
                except (ValueError, TypeError, re.error):
                    continue  # a broken rule only loses its alias step, never the price itself
                first_id = min(p.pricing_id or 0 for p in versions)
                rules.setdefault(key[0], []).append((first_id, versions[-1].model_name, test))
        # rules in the order they were first stored (the package's order: its first match wins)
        self._rules = {
            provider: [(name, test) for _i, name, test in sorted(found, key=lambda r: (r[0], r[1]))]
            for provider, found in rules.items()
        }
        self.providers = sorted({key[0] for key in self._versions})
        self._short_cache: dict[str, str] = {}
        self._alias_cache: dict[tuple[str, str], str | None] = {}

    def version_at(self, provider: str, model_name: str, at: datetime, tier: str = STANDARD) -> Price | None:
        """The version in force at ``at`` (retired ones included), or ``None``."""
        entry = self._versions.get((provider, model_name.lower(), tier))
        if entry is None:
            return None
        times, versions = entry
        position = bisect_right(times, at.timestamp()) - 1
        return versions[position] if position >= 0 else None

    def change_times(self) -> list[float]:
        """Every instant at which some version takes effect (the lookup's answer changes only there)."""
        return sorted({t for times, _prices in self._versions.values() for t in times})

    def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        wanted = None if provider is None else set(equivalent_providers(provider))
        found = {
            (p, versions[-1].model_name)
            for (p, _m, _tier), (_t, versions) in self._versions.items()
            if wanted is None or p in wanted
        }
        return sorted(found)

    def _alias(self, provider: str, model: str) -> str | None:
        """The model name whose match rule accepts ``model`` (or its short name), memoised."""
        key = (provider, model)
        if key in self._alias_cache:
            return self._alias_cache[key]
        found = None
        rules = self._rules.get(provider)
        if rules:
            lowered = model.strip().lower()
            short = short_name(lowered)
            for candidate in (lowered, short) if short != lowered else (lowered,):
                found = next((name for name, test in rules if test(candidate)), None)
                if found is not None:
                    break
        if found is None:
            found = self._dated_alias(provider, model.strip().lower())
        self._alias_cache[key] = found
        return found

    def _dated_alias(self, provider: str, lowered: str) -> str | None:
        """A compact date suffix written with dashes, as the package does when nothing else matches:
        ``gpt-4o-20240806`` is ``gpt-4o-2024-08-06``."""
        dashed = COMPACT_DATE.sub(r"-\1-\2-\3", lowered)
        if dashed == lowered:
            return None
        entry = self._versions.get((provider, dashed, STANDARD))
        if entry is not None:
            return entry[1][-1].model_name
        return next((name for name, test in self._rules.get(provider, ()) if test(dashed)), None)

    def _in_force(self, provider: str, name: str, at: datetime, tier: str) -> tuple[Price | None, str]:
        """The tier's version of ``name`` when there is one, else the standard one; and a note."""
        if tier != STANDARD:
            tiered = self.version_at(provider, name, at, tier)
            if tiered is not None and not tiered.retired:
                return tiered, ""
        standard = self.version_at(provider, name, at, STANDARD)
        if standard is None and tier == STANDARD:
            return None, ""
        note = f"; no {tier} price for {provider}/{name}, standard rates used" if tier != STANDARD else ""
        return standard, note

    def lookup(self, provider: str, model: str, at: datetime, tier: str = STANDARD) -> PriceMatch:
        provider = normalize_provider(provider)
        model_clean = model.strip()
        short = self._short_cache.get(model)
        if short is None:
            short = self._short_cache.setdefault(model, short_name(model))
        retired_note = ""
        names = equivalent_providers(provider)
        for step in ("exact", "short", "alias", "default"):
            for name_provider in names:
                if step == "exact":
                    name: str | None = model_clean
                elif step == "short":
                    name = short if short.lower() != model_clean.lower() else None
                elif step == "alias":
                    name = self._alias(name_provider, model_clean)
                else:
                    name = "default"
                if name is None:
                    continue
                price, tier_note = self._in_force(name_provider, name, at, tier)
                if price is None:
                    continue
                if price.retired:
                    retired_note = f" ({name_provider}/{name} retired since {price.effective_from:%Y-%m-%d})"
                    continue
                reason = _reason(step, name_provider, name, price) + tier_note + retired_note
                return PriceMatch(step, price, reason)
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
    where = {
        "exact": "the exact model name",
        "short": "the short model name",
        "alias": "the model's match rule (an alias or dated id)",
        "default": "the provider's default row",
    }[step]
    tier = f", {price.service_tier} tier" if price.service_tier != STANDARD else ""
    return f"price row #{price.pricing_id} for {provider}/{name}{tier}: {where}, source {price.source}, {since}"


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


@dataclass(frozen=True)
class PicoCost:
    """A call's cost lines in whole pico-dollars; the hot path's result."""

    tier: int | None
    rates: Rates
    uncached: int
    cached: int
    cache_write: int
    cache_write_1h: int
    plain_output: int
    reasoning: int
    web_search: int
    request: int

    @property
    def cost_input(self) -> int:
        return self.uncached + self.cached + self.cache_write + self.cache_write_1h

    @property
    def cost_output(self) -> int:
        return self.plain_output + self.reasoning

    @property
    def cost_total(self) -> int:
        return self.cost_input + self.cost_output + self.web_search + self.request


def price_call(price: Price, usage: Usage) -> PicoCost:
    """Every line of the formula for one call, exact, in pico-dollars (the tier chosen by all input tokens)."""
    tier, r = price.rates_for(usage.input_tokens)
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens - usage.cache_write_1h_tokens
    cost = PicoCost(
        tier,
        r,
        uncached * r.input,
        usage.cached_input_tokens * r.cached,
        usage.cache_write_tokens * r.cache_write,
        usage.cache_write_1h_tokens * r.cache_write_1h,
        (usage.output_tokens - usage.reasoning_tokens) * r.output,
        usage.reasoning_tokens * r.reasoning,
        usage.web_search_calls * r.web_search,
        r.request,
    )
    if cost.cost_total > MAX_CALL_COST_PICO:
        raise PricingError(
            f"cost_total: {usage.input_tokens} input and {usage.output_tokens} output tokens at {price.provider}/"
            f"{price.model_name} would cost ${from_pico(cost.cost_total):,}, above the limit of one call "
            f"(${from_pico(MAX_CALL_COST_PICO):,})"
        )
    return cost


def breakdown(
    match: PriceMatch,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    *,
    usage: Usage | None = None,
    requested_service_tier: str = STANDARD,
) -> CostBreakdown:
    price = match.price
    usage = usage or Usage(input_tokens, output_tokens, cached_input_tokens)
    return CostBreakdown(
        provider=normalize_provider(provider),
        model=model.strip(),
        matched_by=match.matched_by,
        pricing_id=price.pricing_id,
        reason=match.reason,
        price_effective_from=price.effective_from,
        usage=usage,
        cost=price_call(price, usage),
        requested_service_tier=requested_service_tier,
        service_tier=price.service_tier if price.pricing_id is not None else requested_service_tier,
    )


def formula_lines(b: CostBreakdown) -> list[str]:
    """The cost written out as in the seed (``cost_input = 1000 * 0.000001 = $0.001``, ..., ``cost_total = $0.0025``),
    with a line for every part that applies: cache reads and writes, reasoning, web searches, the fee per call,
    and the long-context tier and service tier used."""
    lines: list[str] = []
    if b.tier is not None:
        lines.append(f"tier: input_tokens {b.input_tokens} is above {b.tier}, so the tier's rates price the whole call")
    if b.requested_service_tier != STANDARD or b.service_tier != STANDARD:
        if b.service_tier == b.requested_service_tier:
            lines.append(f"service tier: {b.service_tier} rates")
        else:
            lines.append(f"service tier: {b.requested_service_tier} asked, no such price; {b.service_tier} rates used")
    cache_parts = [
        ("cache_read", b.cached_input_tokens, b.cached_input_token_cost, b.cost_cached_input),
        ("cache_write", b.cache_write_tokens, b.cache_write_token_cost, b.cost_cache_write),
        ("cache_write_1h", b.cache_write_1h_tokens, b.cache_write_1h_token_cost, b.cost_cache_write_1h),
    ]
    if any(count for _n, count, _r, _c in cache_parts):
        uncached = b.uncached_input_tokens
        lines.append(f"input = {uncached} * {to_text(b.input_token_cost)} = {format_usd(b.cost_uncached_input)}")
        for name, count, rate, cost in cache_parts:
            if count:
                lines.append(f"{name} = {count} * {to_text(rate)} = {format_usd(cost)}")
        lines.append(f"cost_input = {format_usd(b.cost_input)}")
    else:
        lines.append(f"cost_input = {b.input_tokens} * {to_text(b.input_token_cost)} = {format_usd(b.cost_input)}")
    if b.reasoning_tokens:
        plain = b.output_tokens - b.reasoning_tokens
        lines.append(f"output = {plain} * {to_text(b.output_token_cost)} = {format_usd(b.cost_plain_output)}")
        lines.append(
            f"reasoning = {b.reasoning_tokens} * {to_text(b.reasoning_token_cost)} = {format_usd(b.cost_reasoning)}"
        )
        lines.append(f"cost_output = {format_usd(b.cost_output)}")
    else:
        lines.append(f"cost_output = {b.output_tokens} * {to_text(b.output_token_cost)} = {format_usd(b.cost_output)}")
    if b.web_search_calls or b.cost_web_search:
        lines.append(
            f"web_search = {b.web_search_calls} * {to_text(b.cost_per_web_search)} = {format_usd(b.cost_web_search)}"
        )
    if b.cost_request:
        lines.append(f"cost_per_request = {format_usd(b.cost_request)}")
    lines.append(f"cost_total = {format_usd(b.cost_total)}")
    return lines


def validate_call(
    provider: str, model: str, input_tokens: object, output_tokens: object, cached_input_tokens: object = 0
) -> tuple[str, str, int, int, int]:
    """Check a call's names and token counts; returns them cleaned."""
    provider_clean = _name(provider, "provider")
    model_clean = _name(model, "model")
    usage = validate_usage(input_tokens, output_tokens, 0 if cached_input_tokens is None else cached_input_tokens)
    return (
        normalize_provider(provider_clean),
        model_clean,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
    )


NAME_LIMITS = {"provider": 100, "model": 300, "user": 200, "request_id": 200, "project": 200}


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
    *,
    cache_write_tokens: object = 0,
    cache_write_1h_tokens: object = 0,
    reasoning_tokens: object = 0,
    web_search_calls: object = 0,
    service_tier: object = STANDARD,
) -> CostBreakdown:
    """Price one call at ``at`` (default: now) without recording it."""
    provider_clean = normalize_provider(_name(provider, "provider"))
    model_clean = _name(model, "model")
    usage = validate_usage(
        input_tokens,
        output_tokens,
        cached_input_tokens,
        cache_write_tokens,
        cache_write_1h_tokens,
        reasoning_tokens,
        web_search_calls,
    )
    tier = parse_service_tier(service_tier)
    moment = at or now_utc()
    if moment.tzinfo is None:
        raise PricingError(f"at: {moment.isoformat()} has no time zone")
    with engine.connect() as conn:
        index = price_book(engine).index(conn)
    match = index.lookup(provider_clean, model_clean, moment, tier)
    return breakdown(
        match,
        provider_clean,
        model_clean,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage=usage,
        requested_service_tier=tier,
    )


def current_index(engine: Engine) -> PriceIndex:
    with engine.connect() as conn:
        return price_book(engine).index(conn)
