"""Issue 19, point 19: names with a control or bidi character are refused on every entry point, naming the field."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.budgets import service as budgets
from core.ingest.keys import ApiKeyError, create_key
from core.pricing.rates import PricingError
from core.pricing.validation import clean_name
from core.recording.calls import CallError, make_call

UNSAFE = [
    "admin\u202egnp.exe",
    "a\u200eb",
    "a\u200fb",
    "x\u202ay",
    "x\u2066y",
    "x\u2069y",
    "bell\x07",
    "del\x7f",
    "c1\x85x",
]
FIELDS = ["provider", "model", "user", "project", "request_id"]


@pytest.mark.parametrize("name", UNSAFE)
@pytest.mark.parametrize("field", FIELDS)
def test_a_call_with_an_unsafe_name_is_refused_naming_the_field(field: str, name: str) -> None:
    values: dict[str, object] = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}
    values[field] = name
    with pytest.raises(CallError, match=f"^{field}: "):
        make_call(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", UNSAFE)
def test_price_budget_and_key_names_refuse_them_too(engine: Engine, name: str) -> None:
    with pytest.raises(PricingError, match="^model: "):
        clean_name(name, "model")  # price edits and the catalog
    with pytest.raises(budgets.BudgetError, match="^name: "):
        budgets.validate(name, "1", "month")
    with pytest.raises(budgets.BudgetError, match="^scope: "):
        budgets.validate("ok", "1", "month", scope=f"user:{name}")
    with pytest.raises(ApiKeyError, match="^name: "):
        create_key(engine, name)
    with pytest.raises(ApiKeyError, match="^project: "):
        create_key(engine, "fine", project=name)


def test_ordinary_names_in_any_script_are_kept() -> None:
    for name in ("Zoë", "開発チーム", "equipe-é", "model:v1 (beta)", "team 👩‍💻"):
        assert make_call("openai", "gpt-4o", 1, 1, user=name).user == name
