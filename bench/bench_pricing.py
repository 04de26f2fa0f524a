"""Pricing whole-bill calls in-process vs ``litellm.cost_per_token`` and ``genai_prices.calc_price`` on the same
calls (goal: >= 10x faster than either on the full-breakdown path).

The calls carry what release 2 bills: cache reads, 5-minute cache writes, reasoning, long-context tiers
(Gemini 2.5 Pro above 200k input tokens), batch calls. Every library prices the same (provider, model,
usage) list; LiteLLM uses the cost map shipped in its wheel (LITELLM_LOCAL_MODEL_COST_MAP=True, no network).
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from common import figure, fresh_database

from core.pricing.formula import breakdown, price_call
from core.pricing.lookup import current_index
from core.pricing.rates import Usage
from core.recording.calls import _Pricer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CALLS = int(os.environ.get("BENCH_PRICING_CALLS", "50000"))
MODELS = [  # (provider, model): known to all three
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
]


def make_calls(n: int, seed: int = 7) -> list[tuple[str, str, Usage, str, datetime]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    calls = []
    for _ in range(n):
        provider, model = rng.choice(MODELS)
        input_tokens = rng.choice([rng.randint(10, 5_000), rng.randint(5_000, 60_000), rng.randint(150_000, 400_000)])
        cached = rng.randint(0, input_tokens // 2) if rng.random() < 0.5 else 0
        written = rng.randint(0, (input_tokens - cached) // 2) if provider == "anthropic" and rng.random() < 0.3 else 0
        output_tokens = rng.randint(1, 4_000)
        reasoning = rng.randint(0, output_tokens) if model in ("gpt-5", "gemini-2.5-pro") else 0
        tier = "batch" if rng.random() < 0.1 and provider != "google" else "standard"
        usage = Usage(input_tokens, output_tokens, cached, written, 0, reasoning, 0)
        calls.append((provider, model, usage, tier, now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))))
    return calls


def rate(work: Any, calls: list) -> float:
    started = time.perf_counter()
    work(calls)
    return len(calls) / (time.perf_counter() - started)


def main() -> None:
    calls = make_calls(CALLS)
    engine = fresh_database("sqlite", "pricing")
    index = current_index(engine)

    def full_breakdown(batch: list) -> None:
        total = Decimal(0)
        for provider, model, usage, tier, moment in batch:
            match = index.lookup(provider, model, moment, tier)
            total += breakdown(
                match,
                provider,
                model,
                usage.input_tokens,
                usage.output_tokens,
                usage=usage,
                requested_service_tier=tier,
            ).cost_total  # the total as a Decimal, as the libraries return theirs
        assert total > 0

    def as_record_batch(batch: list) -> None:
        pricer = _Pricer(index)  # the lookup memoised per (provider, model, tier, price span)
        for provider, model, usage, tier, moment in batch:
            price_call(pricer.match(provider, model, moment, moment.timestamp(), tier).price, usage)

    ours = rate(full_breakdown, calls)
    ingest = rate(as_record_batch, calls)
    engine.dispose()

    import genai_prices
    import litellm

    def with_genai_prices(batch: list) -> None:
        for provider, model, usage, tier, moment in batch:
            genai_prices.calc_price(
                genai_prices.Usage(
                    input_tokens=usage.input_tokens,
                    cache_read_tokens=usage.cached_input_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    output_tokens=usage.output_tokens,
                ),
                model,
                provider_id=provider,
                genai_request_timestamp=moment,
                price_context={"service_tier": tier} if tier != "standard" else None,
            )

    def with_litellm(batch: list) -> None:
        for provider, model, usage, tier, _moment in batch:
            litellm.cost_per_token(
                model=model,
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                cache_read_input_tokens=usage.cached_input_tokens,
                cache_creation_input_tokens=usage.cache_write_tokens,
                custom_llm_provider="gemini" if provider == "google" else provider,
                service_tier=None if tier == "standard" else tier,
            )

    sample = calls[: max(1, CALLS // 5)]  # the libraries are slower: a fifth of the calls is plenty
    genai = rate(with_genai_prices, sample)
    lite = rate(with_litellm, sample)
    gp = f"genai-prices {genai_prices.__version__} calc_price"
    ll = f"litellm {litellm.__version__ if hasattr(litellm, '__version__') else ''} cost_per_token".replace("  ", " ")
    label = f"{CALLS:,} whole-bill calls"
    figure(f"pricing, lookup + full CostBreakdown, {label}", ours, "calls/s", gp, ours / genai)
    figure(f"pricing, lookup + full CostBreakdown, {label}", ours, "calls/s", ll, ours / lite)
    figure(f"pricing as record_batch does, {label}", ingest, "calls/s", gp, ingest / genai)
    figure(f"pricing as record_batch does, {label}", ingest, "calls/s", ll, ingest / lite)
    figure(f"genai_prices.calc_price, {len(sample):,} of the same calls", genai, "calls/s")
    figure(f"litellm.cost_per_token, {len(sample):,} of the same calls", lite, "calls/s")


if __name__ == "__main__":
    main()
