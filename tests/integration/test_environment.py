"""Environment prices: defaults, .env, real variables winning, validation, applied once, edits surviving."""

from decimal import Decimal

import pytest
from sqlalchemy import Engine

from core.config import ConfigError
from core.pricing.edits import PriceEdit, save_price
from core.pricing.lookup import calculate_cost
from core.pricing.seeding import initialize_default_pricing
from core.pricing.versions import all_versions

SEED = ("huggingface", "openai/gpt-oss-120b:groq")


def test_init_is_idempotent(engine: Engine) -> None:
    count = len(all_versions(engine))
    assert initialize_default_pricing(engine) == []
    assert len(all_versions(engine)) == count


def test_first_init_applies_env_from_the_beginning_of_time(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000002")
    initialize_default_pricing(empty_engine)
    from datetime import UTC, datetime

    old_call = calculate_cost(empty_engine, *SEED, 1000, 500, at=datetime(2001, 1, 1, tzinfo=UTC))
    assert old_call.cost_input == Decimal("0.002")


def test_changed_env_value_is_applied_once_as_a_new_version(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {v.id: v for v in all_versions(engine)}
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000002")
    changes = initialize_default_pricing(engine)
    assert changes and all("HUGGINGFACE_INPUT_TOKEN_COST" in c for c in changes)
    assert calculate_cost(engine, *SEED, 1000, 500).cost_total == Decimal("0.0035")
    assert initialize_default_pricing(engine) == []
    versions = all_versions(engine)
    assert len(versions) > len(before)  # new versions, nothing rewritten
    assert all(before[v.id] == v for v in versions if v.id in before)
    # (by id: genai-prices has versions dated in the future, which sort after today's env version)
    assert all(v.source == "env" for v in versions if v.id not in before)


def test_form_edit_survives_restart_until_the_variable_changes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000002")
    initialize_default_pricing(engine)
    save_price(engine, PriceEdit(*SEED, "5", "5", changed_by="alice"))
    assert initialize_default_pricing(engine) == []  # a restart
    assert calculate_cost(engine, *SEED, 1000, 0).cost_total == Decimal("0.005")
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000004")
    initialize_default_pricing(engine)
    assert calculate_cost(engine, *SEED, 1000, 0).cost_total == Decimal("0.004")


def test_provider_pair_sets_that_providers_default_row(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_INPUT_TOKEN_COST", "0.0000001")
    monkeypatch.setenv("GROQ_OUTPUT_TOKEN_COST", "0.0000002")
    changes = initialize_default_pricing(engine)
    assert any("groq/default" in c for c in changes)
    b = calculate_cost(engine, "groq", "some-new-model", 1000, 1000)
    assert (b.matched_by, b.cost_total) == ("default", Decimal("0.0003"))


def test_bad_env_value_writes_nothing(empty_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_OUTPUT_TOKEN_COST", "NaN")
    with pytest.raises(ConfigError, match="HUGGINGFACE_OUTPUT_TOKEN_COST"):
        initialize_default_pricing(empty_engine)
    assert all_versions(empty_engine) == []


def test_init_names_only_the_rate_that_changed(empty_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14.10: `init` reported "output $4.00 -> $4.00" for a value that did not change."""
    initialize_default_pricing(empty_engine)
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "0.000002")
    changes = initialize_default_pricing(empty_engine)
    line = next(c for c in changes if "huggingface/openai/gpt-oss-120b:groq" in c)
    assert "input $1.00 / 1M tokens -> $2.00 / 1M tokens" in line
    assert "output" not in line


def test_an_env_price_keeps_the_other_rates_of_the_version_it_replaces(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    initialize_default_pricing(empty_engine)
    edit = PriceEdit("acme", "default", "1", "2", cache_write_per_1m="1.25", reasoning_per_1m="4")
    assert save_price(empty_engine, edit) is not None
    monkeypatch.setenv("ACME_INPUT_TOKEN_COST", "0.000003")
    monkeypatch.setenv("ACME_OUTPUT_TOKEN_COST", "0.000006")
    initialize_default_pricing(empty_engine)
    b = calculate_cost(empty_engine, "acme", "any-model", 1000, 100, cache_write_tokens=1000, reasoning_tokens=100)
    assert b.input_token_cost == Decimal("0.000003")
    assert b.cache_write_token_cost == Decimal("0.00000125")
    assert b.reasoning_token_cost == Decimal("0.000004")
