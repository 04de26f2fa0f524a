"""Reading the providers' report pages: exact amounts, days, models, token meanings, and wrong shapes refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.money import to_text
from core.reconcile import anthropic, openai
from core.reconcile.errors import ReconcileError
from core.reconcile.files import read_pages
from core.reconcile.lines import CostLine, UsageLine, exact_amount, merge_cost_lines
from core.reconcile.pages import exact_json

NOV_3 = date(2026, 11, 3)
NOV_3_EPOCH = 1793664000  # 2026-11-03T00:00:00Z


def openai_page(results: list[str], *, start: int = NOV_3_EPOCH, end: int | None = None, more: bool = False) -> Any:
    """An OpenAI page read exactly from JSON text (results given as text, so numbers keep their digits)."""
    return exact_json(openai_page_text(results, start=start, end=end, more=more))


def openai_page_text(
    results: list[str], *, start: int = NOV_3_EPOCH, end: int | None = None, more: bool = False
) -> str:
    end = start + 86400 if end is None else end
    bucket = f'{{"object": "bucket", "start_time": {start}, "end_time": {end}, "results": [{", ".join(results)}]}}'
    cursor = '"page_2"' if more else "null"
    return f'{{"object": "page", "data": [{bucket}], "has_more": {json.dumps(more)}, "next_page": {cursor}}}'


def openai_cost(line_item: str | None, value: str) -> str:
    amount = f'{{"value": {value}, "currency": "usd"}}'
    return f'{{"object": "organization.costs.result", "amount": {amount}, "line_item": {json.dumps(line_item)}}}'


def anthropic_page(
    results: list[dict[str, Any]], *, starting_at: str = "2026-11-03T00:00:00Z", ending_at: str = "2026-11-04T00:00:00Z"
) -> Any:  # noqa: E501
    return {
        "data": [{"starting_at": starting_at, "ending_at": ending_at, "results": results}],
        "has_more": False,
        "next_page": None,
    }  # noqa: E501


def anthropic_cost(
    amount: str,
    model: str | None = "claude-sonnet-4-5-20250929",
    token_type: str | None = "output_tokens",
    **extra: Any,
) -> dict[str, Any]:  # noqa: E501
    return {"currency": "USD", "amount": amount, "description": "Claude Sonnet 4.5 Usage", "cost_type": "tokens",
            "model": model, "token_type": token_type, "service_tier": "standard", "context_window": "0-200k",
            "workspace_id": None, **extra}  # fmt: skip


def anthropic_usage(**counts: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": "claude-sonnet-4-5-20250929",
        "uncached_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
        "cache_read_input_tokens": 400,
        "output_tokens": 50,
        "server_tool_use": {"web_search_requests": 0},
    }
    result.update(counts)
    return result


# -- amounts ---------------------------------------------------------------------------------------


def test_anthropic_amount_in_cents_becomes_exact_dollars() -> None:
    [line] = anthropic.parse_cost_page(anthropic_page([anthropic_cost("4125.00")]))
    assert line == CostLine("anthropic", NOV_3, "claude-sonnet-4-5-20250929", "output_tokens", Decimal("41.25"))
    assert str(line.amount) == "41.25"


def test_openai_amount_is_read_from_its_digits_not_through_a_float() -> None:
    model = "gpt-4o-2024-08-06"
    lines = openai.parse_cost_page(
        openai_page([openai_cost(f"{model}, input", "0.1"), openai_cost(f"{model}, output", "0.2")])
    )
    assert sum((line.amount for line in lines), Decimal(0)) == Decimal("0.3")  # 0.30000000000000004 through floats


def test_a_page_parsed_with_floats_is_refused_rather_than_rounded() -> None:
    text = openai_page_text([openai_cost("gpt-4o, input", "0.1")])
    with pytest.raises(ReconcileError, match=r"amount\.value: 0\.1 is not an exact decimal"):
        openai.parse_cost_page(json.loads(text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.1234567890124999", "0.123456789012"),  # 13+ places: rounded to 12
        ("0.0000000000005", "0"),  # half-even: a tie goes to the even digit (0), not up
        ("0.0000000000015", "0.000000000002"),  # ... and here to 2, not down
        ("0.0000000000025", "0.000000000002"),
        ("12.000000000000", "12"),
        ("1E+2", "100"),
    ],
)
def test_openai_amounts_keep_twelve_places_rounded_half_even(value: str, expected: str) -> None:
    [line] = openai.parse_cost_page(openai_page([openai_cost("gpt-4o, input", value)]))
    assert line.amount == Decimal(expected)
    assert to_text(line.amount) == expected


@pytest.mark.parametrize(
    ("cents", "dollars"),
    [
        ("0.00000000005", "0"),  # 5e-13 dollars: a tie, to even
        ("0.00000000015", "0.000000000002"),
        ("123.456789012345678", "1.234567890123"),
        ("0", "0"),
        ("-250", "-2.5"),  # a credit stays a credit
    ],
)
def test_anthropic_cents_are_divided_exactly_then_rounded_half_even(cents: str, dollars: str) -> None:
    [line] = anthropic.parse_cost_page(anthropic_page([anthropic_cost(cents)]))
    assert to_text(line.amount) == dollars


def test_exact_amount_refuses_what_is_not_an_exact_decimal() -> None:
    for bad in (0.1, True, "4_125", "NaN", "1e400", " 12", "12,50", None, [1]):
        with pytest.raises(ValueError):
            exact_amount(bad)


# -- models and token types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line_item", "model", "token_type"),
    [
        ("gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06", "input"),
        ("gpt-4o-mini-2024-07-18, cached input", "gpt-4o-mini-2024-07-18", "cached input"),
        ("ft:gpt-4o-mini:acme::abc123, output", "ft:gpt-4o-mini:acme::abc123", "output"),
        ("o3, output, batch", "o3", "output, batch"),  # only the first comma splits
        ("web search tool calls", "web search tool calls", None),  # no comma: the whole text is the model
        ("  gpt-4.1 ,input ", "gpt-4.1", "input"),
    ],
)
def test_openai_line_item_gives_model_before_the_first_comma(
    line_item: str, model: str, token_type: str | None
) -> None:  # noqa: E501
    [line] = openai.parse_cost_page(openai_page([openai_cost(line_item, "1.50")]))
    assert (line.model, line.token_type, line.amount) == (model, token_type, Decimal("1.5"))


def test_anthropic_cost_without_a_model_is_named_by_its_description() -> None:
    web = anthropic_cost("1000", model=None, token_type=None, cost_type="web_search", description="Web Search Usage")
    [line] = anthropic.parse_cost_page(anthropic_page([web]))
    assert (line.model, line.token_type, line.amount) == ("Web Search Usage", None, Decimal("10"))


# -- days ------------------------------------------------------------------------------------------


def test_days_are_the_utc_day_of_the_bucket_start() -> None:
    [line] = openai.parse_cost_page(openai_page([openai_cost("gpt-4o, input", "1")], start=1730419200))
    assert line.day == date(2024, 11, 1)
    offset = anthropic_page(
        [anthropic_cost("1")], starting_at="2026-11-03T01:00:00+01:00", ending_at="2026-11-04T01:00:00+01:00"
    )  # noqa: E501
    assert anthropic.parse_cost_page(offset)[0].day == NOV_3


def test_a_bucket_that_is_not_one_utc_day_is_refused() -> None:
    hourly = openai_page([openai_cost("gpt-4o, input", "1")], start=NOV_3_EPOCH + 3600, end=NOV_3_EPOCH + 7200)
    with pytest.raises(
        ReconcileError,
        match=r"^openai: cost page: data\[0\]: starts at 2026-11-03T01:00:00\+00:00, not at midnight UTC"
        r" \(fetch with bucket_width=1d\)$",
    ):
        openai.parse_cost_page(hourly)
    two_days = anthropic_page([anthropic_cost("1")], ending_at="2026-11-05T00:00:00Z")
    with pytest.raises(ReconcileError, match=r"data\[0\]: spans .* not one UTC day"):
        anthropic.parse_cost_page(two_days)


# -- token counts in our meaning -------------------------------------------------------------------


def test_anthropic_input_tokens_are_the_sum_of_all_four_input_counts() -> None:
    [line] = anthropic.parse_usage_page(anthropic_page([anthropic_usage()]))
    assert line == UsageLine(
        provider="anthropic",
        day=NOV_3,
        model="claude-sonnet-4-5-20250929",
        input_tokens=100 + 20 + 30 + 400,
        output_tokens=50,
        cached_input_tokens=400,
        cache_write_tokens=20,
        cache_write_1h_tokens=30,
        requests=None,
    )


def test_openai_input_tokens_already_include_cached_ones() -> None:
    usage = (
        '{"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 200,'
        ' "input_cached_tokens": 800, "input_audio_tokens": 0, "output_audio_tokens": 0,'
        ' "num_model_requests": 7, "project_id": null, "user_id": null, "api_key_id": null,'
        ' "model": "gpt-4o-mini-2024-07-18", "batch": null}'
    )
    [line] = openai.parse_usage_page(openai_page([usage]))
    assert (line.model, line.input_tokens, line.cached_input_tokens, line.output_tokens, line.requests) == (
        "gpt-4o-mini-2024-07-18",
        1000,
        800,
        200,
        7,
    )


def test_lines_with_one_key_are_summed_once() -> None:
    lines = [
        CostLine("anthropic", NOV_3, "claude-sonnet-4-5", "output_tokens", Decimal("1.000000000001")),
        CostLine("anthropic", NOV_3, "claude-sonnet-4-5", "output_tokens", Decimal("2")),  # the 1M context window
        CostLine("anthropic", NOV_3, "claude-sonnet-4-5", None, Decimal("5")),
    ]
    merged = merge_cost_lines(lines)
    assert [(line.token_type, line.amount) for line in merged] == [
        (None, Decimal("5")),
        ("output_tokens", Decimal("3.000000000001")),
    ]  # noqa: E501


# -- wrong shapes ----------------------------------------------------------------------------------


def _openai_with(**change: Any) -> Any:
    page = openai_page([openai_cost("gpt-4o, input", "1")])
    page.update(change)
    return page


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ([], "cost page: the page is a list, not a page object"),
        ({"object": "list", "data": []}, "cost page: object: 'list' is not 'page'"),
        (_openai_with(data={"start_time": 1}), "cost page: data: is an object, not a list"),
        ({"object": "page", "has_more": False}, "cost page: data: is missing"),
        (_openai_with(has_more="no"), "cost page: has_more: 'no' is not true or false"),
        (_openai_with(has_more=True, next_page=None), "cost page: next_page: is missing while has_more is true"),
        (openai_page([openai_cost(None, "1")]), r"cost page: data\[0\].results\[0\].line_item: is null"),
        (
            openai_page([openai_cost("gpt-4o, input", '"abc"')]),
            r"cost page: data\[0\].results\[0\].amount.value: 'abc' is not a decimal number",
        ),
        (
            openai_page(
                ['{"object": "organization.costs.result", "amount": {"value": 1, "currency": "eur"}, "line_item": "x"}']
            ),
            r"cost page: data\[0\].results\[0\].amount.currency: 'eur' is not USD",
        ),
        (
            openai_page(['{"object": "organization.usage.embeddings.result", "input_tokens": 3}']),
            r"cost page: data\[0\].results\[0\].object: 'organization.usage.embeddings.result' is neither",
        ),
        (
            openai_page(
                [
                    '{"object": "organization.usage.completions.result", "model": "gpt-4o", "input_tokens": 1,'
                    ' "output_tokens": 1, "num_model_requests": 1}'
                ]
            ),
            r"cost page: data\[0\].results\[0\]: is a usage result in a page of cost results",
        ),
    ],
)
def test_openai_cost_page_of_the_wrong_shape_is_refused_naming_the_place(page: Any, message: str) -> None:
    with pytest.raises(ReconcileError, match=f"^openai: {message}") as caught:
        openai.parse_cost_page(page)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (anthropic_usage(cache_creation=None), r"results\[0\].cache_creation: is null, not an object"),
        (anthropic_usage(output_tokens=-1), r"results\[0\].output_tokens: -1 is not a whole count"),
        (anthropic_usage(output_tokens="12"), r"results\[0\].output_tokens: '12' is not a whole count"),
        (anthropic_usage(uncached_input_tokens=True), r"results\[0\].uncached_input_tokens: True is not a whole count"),
        (anthropic_usage(model=None), r"results\[0\].model: is null"),
        (
            {"model": "claude-opus-4-1"},
            r"results\[0\]: is neither a cost result \(amount\) nor a messages usage result",
        ),
    ],
)
def test_anthropic_usage_page_of_the_wrong_shape_is_refused(result: dict[str, Any], message: str) -> None:
    with pytest.raises(ReconcileError, match=f"^anthropic: usage page: data\\[0\\].{message}"):
        anthropic.parse_usage_page(anthropic_page([result]))


def test_anthropic_bucket_time_must_be_rfc3339_with_an_offset() -> None:
    with pytest.raises(ReconcileError, match=r"data\[0\].starting_at: '2026-11-03' has no time zone offset"):
        anthropic.parse_cost_page(anthropic_page([], starting_at="2026-11-03"))
    with pytest.raises(ReconcileError, match=r"data\[0\].ending_at: 1793750400 is not an RFC 3339 time"):
        anthropic.parse_cost_page(
            {
                "data": [{"starting_at": "2026-11-03T00:00:00Z", "ending_at": 1793750400, "results": []}],
                "has_more": False,
            }
        )  # noqa: E501


# -- saved files (reconcile import) ----------------------------------------------------------------

ANTHROPIC_COST = anthropic_page([anthropic_cost("4125.00")])
ANTHROPIC_USAGE = anthropic_page(
    [anthropic_usage()], starting_at="2026-11-04T00:00:00Z", ending_at="2026-11-05T00:00:00Z"
)  # noqa: E501
EMPTY = anthropic_page([], starting_at="2026-11-05T00:00:00Z", ending_at="2026-11-06T00:00:00Z")


def test_a_json_array_of_pages_of_both_kinds_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "anthropic.json"
    path.write_text(json.dumps([ANTHROPIC_USAGE, EMPTY, ANTHROPIC_COST]))
    fetched = read_pages(path, "anthropic")
    assert [line.amount for line in fetched.cost_lines] == [Decimal("41.25")]
    assert [line.input_tokens for line in fetched.usage_lines] == [550]
    # the empty page's day is known billed 0 and used 0; each kind's own days besides
    assert fetched.days == {date(2026, 11, 3), date(2026, 11, 5)}
    assert fetched.usage_days == {date(2026, 11, 4), date(2026, 11, 5)}


def test_one_page_a_line_reads_the_same_as_an_array(tmp_path: Path) -> None:
    array, lines = tmp_path / "a.json", tmp_path / "a.ndjson"
    array.write_text(json.dumps([ANTHROPIC_COST, ANTHROPIC_USAGE]))
    lines.write_text(f"{json.dumps(ANTHROPIC_USAGE)}\n\n{json.dumps(ANTHROPIC_COST)}\n")
    assert read_pages(lines, "anthropic") == read_pages(array, "anthropic")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "x.json is empty"),
        ("[]", "x.json is an empty array: no pages"),
        ('[{"data": []', r"x.json is not a JSON array of pages \(Expecting ',' delimiter at line 1 column 13\)"),
        (json.dumps(ANTHROPIC_COST) + "\nnot json\n", r"x.json: line 2 is not JSON \(Expecting value at column 1\)"),
        (json.dumps(ANTHROPIC_COST) + '\n{"has_more": false}\n', "x.json: line 2: data: is missing"),
        (
            json.dumps([ANTHROPIC_COST, ANTHROPIC_COST]),
            r"x.json: page 2: data\[0\] gives 2026-11-03 again \(cost already in x.json: page 1\)",
        ),
        (json.dumps([{"data": [], "has_more": False}]), "x.json holds no day of any report"),
        ('{"data": [], "has_more": false, "x": NaN}', r"x.json: line 1 is not JSON \(NaN is not a number\)"),
    ],
)
def test_a_file_that_is_not_such_pages_is_refused_whole(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ReconcileError, match=f"^anthropic: {message}"):
        read_pages(path, "anthropic")


def test_pages_of_the_other_provider_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    path.write_text(json.dumps([ANTHROPIC_COST]))
    with pytest.raises(ReconcileError, match=r"^openai: costs.json: page 1: data\[0\].start_time: is missing$"):
        read_pages(path, "openai")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReconcileError, match="^openai: cannot read nothing.json: No such file or directory$"):
        read_pages(tmp_path / "nothing.json", "openai")
