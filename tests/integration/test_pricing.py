"""The lookup chain, step by step, and the seed's worked example to the exact decimal."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from core.pricing.edits import PriceEdit, save_price
from core.pricing.lookup import calculate_cost
from core.pricing.rates import PricingError

SEED = ("huggingface", "openai/gpt-oss-120b:groq")


def test_seed_example_costs_exactly_a_quarter_cent(engine: Engine) -> None:
    b = calculate_cost(engine, *SEED, 1000, 500)
    assert b.matched_by == "exact"
    assert (b.cost_input, b.cost_output, b.cost_total) == (Decimal("0.001"), Decimal("0.0015"), Decimal("0.0025"))
    assert b.pricing_id is not None


def test_provider_names_are_case_insensitive(engine: Engine) -> None:
    assert calculate_cost(engine, " HuggingFace ", SEED[1], 1000, 500).cost_total == Decimal("0.0025")


def test_other_route_falls_to_the_short_name(engine: Engine) -> None:
    b = calculate_cost(engine, "huggingface", "openai/gpt-oss-120b:cerebras", 1000, 500)
    assert b.matched_by == "short"
    assert b.cost_total == Decimal("0.0025")


def test_unknown_model_of_a_known_provider_uses_its_default_row(engine: Engine) -> None:
    b = calculate_cost(engine, "huggingface", "meta-llama/Llama-3.1-8B-Instruct", 1000, 500)
    assert b.matched_by == "default"


def test_provider_without_rows_uses_its_environment_prices(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_INPUT_TOKEN_COST", "0.000002")
    monkeypatch.setenv("ACME_OUTPUT_TOKEN_COST", "0.000004")
    b = calculate_cost(engine, "acme", "whatever-1", 1000, 500)
    assert (b.matched_by, b.cost_total) == ("env", Decimal("0.004"))
    assert b.pricing_id is None


def test_mistral_shares_the_huggingface_variables(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000005")
    b = calculate_cost(engine, "mistral", "some-unlisted-model", 1000, 0)
    assert (b.matched_by, b.cost_total) == ("env", Decimal("0.005"))


def test_unknown_provider_falls_to_the_estimate(engine: Engine) -> None:
    b = calculate_cost(engine, "nobody-ai", "mystery", 1000, 500)
    assert b.matched_by == "estimate"
    assert b.cost_total == Decimal("0.0015")  # USD 1 per 1M tokens, in and out
    assert "estimated" in b.reason


def test_cached_tokens_are_billed_once_at_the_cached_rate(engine: Engine) -> None:
    b = calculate_cost(engine, "openai", "gpt-4o", 1000, 0, cached_input_tokens=400)
    # gpt-4o: $2.50 / 1M input, $1.25 / 1M cached input
    assert b.cost_input == Decimal(600) * Decimal("0.0000025") + Decimal(400) * Decimal("0.00000125")


def test_cached_tokens_without_a_cached_rate_cost_the_input_rate(engine: Engine) -> None:
    b = calculate_cost(engine, *SEED, 1000, 0, cached_input_tokens=400)
    assert b.cost_input == Decimal("0.001")


def test_cost_per_request_is_added(engine: Engine) -> None:
    save_price(
        engine,
        PriceEdit(
            "acme", "search-1", "1", "2", cost_per_request="0.005", effective_from=datetime(2020, 1, 1, tzinfo=UTC)
        ),
    )
    b = calculate_cost(engine, "acme", "search-1", 1_000_000, 0)
    assert b.cost_total == Decimal("1.005")


def test_price_in_force_at_the_given_time(engine: Engine) -> None:
    change = datetime.now(UTC) - timedelta(days=10)
    save_price(engine, PriceEdit(*SEED, "2", "6", effective_from=change))
    before = calculate_cost(engine, *SEED, 1000, 500, at=change - timedelta(seconds=1))
    after = calculate_cost(engine, *SEED, 1000, 500, at=change)
    assert (before.cost_total, after.cost_total) == (Decimal("0.0025"), Decimal("0.005"))


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (-1, "negative"),
        (1.5, "whole number"),
        ("ten", "whole number"),
        (True, "whole number"),
        (10**12 + 1, "above the limit"),
    ],
)
def test_bad_token_counts_are_refused(engine: Engine, tokens: object, message: str) -> None:
    with pytest.raises(PricingError, match=message) as info:
        calculate_cost(engine, *SEED, tokens, 0)
    assert "input_tokens" in str(info.value)


def test_cached_cannot_exceed_input(engine: Engine) -> None:
    with pytest.raises(PricingError, match="cached_input_tokens"):
        calculate_cost(engine, *SEED, 10, 0, cached_input_tokens=11)
