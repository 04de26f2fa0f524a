"""Settings from the environment and .env: defaults, precedence, refusals naming the variable."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core import config
from core.config import ConfigError


def test_defaults_apply_when_unset() -> None:
    price = config.env_price("huggingface")
    assert price is not None
    assert (price.input_token_cost, price.output_token_cost) == (Decimal("0.000001"), Decimal("0.000003"))


def test_dotenv_is_read_and_a_real_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("HUGGINGFACE_INPUT_TOKEN_COST=0.000002\nHUGGINGFACE_OUTPUT_TOKEN_COST=0.000007\n")
    monkeypatch.setenv("HUGGINGFACE_OUTPUT_TOKEN_COST", "0.000009")
    price = config.env_price("huggingface")
    assert price is not None
    assert (price.input_token_cost, price.output_token_cost) == (Decimal("0.000002"), Decimal("0.000009"))


def test_empty_value_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", "  ")
    price = config.env_price("huggingface")
    assert price is not None and price.input_token_cost == Decimal("0.000001")


@pytest.mark.parametrize("value", ["cheap", "-0.000001", "NaN", "inf", "-inf", "5", "1e400"])
def test_bad_values_name_the_variable_and_the_value(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_INPUT_TOKEN_COST", value)
    with pytest.raises(ConfigError) as info:
        config.env_price("huggingface")
    assert "HUGGINGFACE_INPUT_TOKEN_COST" in str(info.value)
    assert value in str(info.value)


def test_a_provider_needs_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_INPUT_TOKEN_COST", "0.000001")
    with pytest.raises(ConfigError, match="GROQ_OUTPUT_TOKEN_COST"):
        config.env_price("groq")
