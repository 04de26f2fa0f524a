"""The cost formula (DESIGN.md, "A price version"), in whole pico-dollars so every cost is exact::

    uncached    = input - cached_input - cache_write - cache_write_1h
    cost_input  = uncached * input + cached_input * cached_input_rate
                + cache_write * cache_write_rate + cache_write_1h * cache_write_1h_rate
    cost_output = (output - reasoning) * output + reasoning * reasoning_rate
    cost_total  = cost_input + cost_output + web_search_calls * per_search + per_request

A long-context tier (the highest ``above_input_tokens`` strictly below the call's
input tokens) replaces the rates it names for the whole call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from core.money import format_exact_usd as usd
from core.money import from_pico, to_text
from core.pricing.rates import (
    MAX_CALL_COST_PICO,
    STANDARD,
    Price,
    PriceMatch,
    PricingError,
    Rates,
    Usage,
    normalize_provider,
)


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
        lines.append(f"input = {uncached} * {to_text(b.input_token_cost)} = {usd(b.cost_uncached_input)}")
        for name, count, rate, cost in cache_parts:
            if count:
                lines.append(f"{name} = {count} * {to_text(rate)} = {usd(cost)}")
        lines.append(f"cost_input = {usd(b.cost_input)}")
    else:
        lines.append(f"cost_input = {b.input_tokens} * {to_text(b.input_token_cost)} = {usd(b.cost_input)}")
    if b.reasoning_tokens:
        plain = b.output_tokens - b.reasoning_tokens
        lines.append(f"output = {plain} * {to_text(b.output_token_cost)} = {usd(b.cost_plain_output)}")
        lines.append(
            f"reasoning = {b.reasoning_tokens} * {to_text(b.reasoning_token_cost)} = {usd(b.cost_reasoning)}"
        )
        lines.append(f"cost_output = {usd(b.cost_output)}")
    else:
        lines.append(f"cost_output = {b.output_tokens} * {to_text(b.output_token_cost)} = {usd(b.cost_output)}")
    if b.web_search_calls or b.cost_web_search:
        lines.append(
            f"web_search = {b.web_search_calls} * {to_text(b.cost_per_web_search)} = {usd(b.cost_web_search)}"
        )
    if b.cost_request:
        lines.append(f"cost_per_request = {usd(b.cost_request)}")
    lines.append(f"cost_total = {usd(b.cost_total)}")
    return lines
