"""The whole bill of a call: cache writes (5 min, 1 h), cache reads, reasoning, long-context tiers,
service tiers, web searches and fees per call, priced exactly, stored, rolled up and verified."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert

from core.cli.main import main
from core.pricing.formula import formula_lines
from core.pricing.lookup import calculate_cost, price_book
from core.pricing.rates import PricingError
from core.recording.audit import verify_call
from core.recording.calls import CallError, call_from_mapping, make_call, record_batch
from core.recording.rollups import check_rollups
from core.reporting import aggregates as reports
from core.storage.tables import PriceVersion
from core.times import BEGINNING_OF_TIME

NOW = datetime.now(UTC).replace(microsecond=0)


def add_price(engine: Engine, provider: str, model: str, **rates: object) -> int:
    """A price version with any release-2 field (USD per token, as text); in force from the beginning."""
    values: dict[str, object] = dict(
        provider=provider,
        model_name=model,
        effective_from=rates.pop("effective_from", BEGINNING_OF_TIME),
        source="form",
        changed_by="test",
        created_at=NOW,
        currency="USD",
        retired=False,
    )
    for name, value in rates.items():
        if name == "tiers":
            values[name] = json.dumps(value)
        elif name in ("service_tier", "match_rule"):
            values[name] = value if not isinstance(value, dict) else json.dumps(value)
        else:
            values[name] = Decimal(str(value))
    with engine.begin() as conn:
        new_id = conn.execute(insert(PriceVersion).returning(PriceVersion.id), values).scalar_one()
    price_book(engine).invalidate()
    return int(new_id)


CLAUDE = dict(
    input_token_cost="0.000003",
    output_token_cost="0.000015",
    cached_input_token_cost="0.0000003",
    cache_write_token_cost="0.00000375",
    cache_write_1h_token_cost="0.000006",
    cost_per_web_search="0.01",
)


def test_anthropic_cache_reads_and_writes_are_billed_once_each(engine: Engine) -> None:
    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    # Anthropic reported input 3, cache read 1,111, cache write 418: all input is 1,532
    b = calculate_cost(
        engine, "anthropic", "claude-sonnet-4-5", 1532, 100, cached_input_tokens=1111, cache_write_tokens=418
    )
    assert b.cost_uncached_input == Decimal("0.000009")
    assert b.cost_cached_input == Decimal("0.0003333")
    assert b.cost_cache_write == Decimal("0.0015675")
    assert b.cost_input == Decimal("0.0019098")
    assert b.cost_output == Decimal("0.0015")
    assert b.cost_total == Decimal("0.0034098")
    lines = formula_lines(b)
    assert "cache_write = 418 * 0.00000375 = $0.0015675" in lines
    assert "cache_read = 1111 * 0.0000003 = $0.0003333" in lines
    assert lines[-1] == "cost_total = $0.0034098"


def test_one_hour_writes_take_their_own_rate_and_fall_back_to_the_five_minute_rate(engine: Engine) -> None:
    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    b = calculate_cost(
        engine, "anthropic", "claude-sonnet-4-5", 3000, 0, cache_write_tokens=1000, cache_write_1h_tokens=2000
    )
    assert b.cost_input == Decimal("0.00375") + Decimal("0.012")
    add_price(
        engine,
        "anthropic",
        "no-1h-rate",
        input_token_cost="0.000001",
        output_token_cost="0.000002",
        cache_write_token_cost="0.00000125",
    )
    b = calculate_cost(engine, "anthropic", "no-1h-rate", 1000, 0, cache_write_1h_tokens=1000)
    assert b.cache_write_1h_token_cost == Decimal("0.00000125")
    assert b.cost_total == Decimal("0.00125")
    add_price(engine, "anthropic", "no-write-rates", input_token_cost="0.000001", output_token_cost="0.000002")
    b = calculate_cost(
        engine, "anthropic", "no-write-rates", 1000, 0, cache_write_tokens=400, cache_write_1h_tokens=600
    )
    assert b.cost_total == Decimal("0.001")  # both take the input rate


def test_reasoning_is_part_of_output_at_its_own_rate(engine: Engine) -> None:
    add_price(engine, "google", "gemini-2.5-pro", input_token_cost="0.00000125", output_token_cost="0.00001")
    # Gemini: candidates 500 + thoughts 1,500 = 2,000 output tokens, 1,500 of them reasoning
    b = calculate_cost(engine, "gemini", "gemini-2.5-pro", 1000, 2000, reasoning_tokens=1500)
    assert b.cost_output == Decimal("0.02")  # reasoning defaults to the output rate
    assert b.matched_by == "exact"  # `gemini` is another name of `google`
    add_price(
        engine,
        "acme",
        "thinker",
        input_token_cost="0.000001",
        output_token_cost="0.000002",
        reasoning_token_cost="0.000004",
    )
    b = calculate_cost(engine, "acme", "thinker", 0, 1000, reasoning_tokens=250)
    assert (b.cost_plain_output, b.cost_reasoning) == (Decimal("0.0015"), Decimal("0.001"))
    assert "reasoning = 250 * 0.000004 = $0.001" in formula_lines(b)


def test_gpt5_example_from_the_issue(engine: Engine) -> None:
    add_price(
        engine,
        "openai",
        "gpt-5-test",
        input_token_cost="0.00000125",
        output_token_cost="0.00001",
        cached_input_token_cost="0.000000125",
    )
    b = calculate_cost(engine, "openai", "gpt-5-test", 10000, 2000, cached_input_tokens=8000, reasoning_tokens=1500)
    assert b.cost_total == Decimal("0.0235")


def test_long_context_tier_prices_the_whole_call_strictly_above_the_threshold(engine: Engine) -> None:
    add_price(
        engine,
        "google",
        "gemini-2.5-pro",
        input_token_cost="0.00000125",
        output_token_cost="0.00001",
        cached_input_token_cost="0.00000031",
        tiers=[{"above_input_tokens": 200000, "input_token_cost": "0.0000025", "output_token_cost": "0.000015"}],
    )
    at_threshold = calculate_cost(engine, "google", "gemini-2.5-pro", 200000, 1000)
    assert at_threshold.tier is None
    assert at_threshold.cost_total == Decimal("0.25") + Decimal("0.01")
    above = calculate_cost(engine, "google", "gemini-2.5-pro", 200001, 1000)
    assert above.tier == 200000
    assert above.cost_total == Decimal("200001") * Decimal("0.0000025") + Decimal("0.015")
    # cache reads count toward the threshold; a rate the tier leaves out stays as in the base
    cached = calculate_cost(engine, "google", "gemini-2.5-pro", 200001, 0, cached_input_tokens=200000)
    assert cached.tier == 200000
    assert cached.cost_input == Decimal("0.0000025") + Decimal("200000") * Decimal("0.00000031")
    assert any(line.startswith("tier: input_tokens 200001 is above 200000") for line in formula_lines(cached))


def test_an_empty_rate_inside_a_tier_takes_the_tiers_input_rate(engine: Engine) -> None:
    add_price(
        engine,
        "acme",
        "long",
        input_token_cost="0.000001",
        output_token_cost="0.000002",
        tiers=[{"above_input_tokens": 100, "input_token_cost": "0.000003"}],
    )
    b = calculate_cost(engine, "acme", "long", 200, 0, cached_input_tokens=100, cache_write_tokens=50)
    assert b.cost_input == Decimal("200") * Decimal("0.000003")


def test_flex_call_with_and_without_a_flex_price(engine: Engine) -> None:
    add_price(engine, "openai", "gpt-x", input_token_cost="0.000002", output_token_cost="0.000008")
    without = calculate_cost(engine, "openai", "gpt-x", 1000, 1000, service_tier="flex")
    assert without.service_tier == "standard"
    assert without.requested_service_tier == "flex"
    assert without.cost_total == Decimal("0.01")
    assert "no flex price" in without.reason
    add_price(engine, "openai", "gpt-x", input_token_cost="0.000001", output_token_cost="0.000004", service_tier="flex")
    with_flex = calculate_cost(engine, "openai", "gpt-x", 1000, 1000, service_tier="flex")
    assert with_flex.service_tier == "flex"
    assert with_flex.cost_total == Decimal("0.005")
    assert calculate_cost(engine, "openai", "gpt-x", 1000, 1000).cost_total == Decimal("0.01")  # standard unchanged


def test_web_searches_and_a_fee_per_call(engine: Engine) -> None:
    add_price(engine, "anthropic", "claude-sonnet-4-5", cost_per_request="0.0001", **CLAUDE)
    b = calculate_cost(engine, "anthropic", "claude-sonnet-4-5", 1000, 0, web_search_calls=3)
    assert b.cost_web_search == Decimal("0.03")
    assert b.cost_request == Decimal("0.0001")
    assert b.cost_total == Decimal("0.003") + Decimal("0.03") + Decimal("0.0001")
    assert "web_search = 3 * 0.01 = $0.03" in formula_lines(b)


def test_alias_step_prices_a_dated_model_id_by_its_match_rule(engine: Engine) -> None:
    add_price(engine, "anthropic", "claude-zeta-4", match_rule={"starts_with": "claude-zeta-4"}, **CLAUDE)
    b = calculate_cost(engine, "anthropic", "claude-zeta-4-20260101", 1000, 0)
    assert b.matched_by == "alias"
    assert b.cost_total == Decimal("0.003")
    assert calculate_cost(engine, "anthropic", "claude-zeta-4", 1000, 0).matched_by == "exact"
    assert calculate_cost(engine, "anthropic", "claude-opus-9", 1000, 0).matched_by != "alias"


def test_seed_example_is_unchanged(engine: Engine) -> None:
    b = calculate_cost(engine, "huggingface", "openai/gpt-oss-120b:groq", 1000, 500)
    assert (b.matched_by, b.cost_total) == ("exact", Decimal("0.0025"))
    assert formula_lines(b) == [
        "cost_input = 1000 * 0.000001 = $0.001",
        "cost_output = 500 * 0.000003 = $0.0015",
        "cost_total = $0.0025",
    ]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (dict(cached_input_tokens=600, cache_write_tokens=500), "cached_input_tokens + cache_write_tokens"),
        (dict(cache_write_1h_tokens=1001), "cache_write_1h_tokens"),
        (dict(reasoning_tokens=501), "reasoning_tokens: 501"),
        (dict(web_search_calls=-1), "web_search_calls: -1"),
        (dict(cache_write_tokens="2.5"), "cache_write_tokens: '2.5'"),
        (dict(service_tier="turbo"), "service_tier: 'turbo'"),
    ],
)
def test_bad_usage_is_refused_naming_the_field(engine: Engine, kwargs: dict, named: str) -> None:
    with pytest.raises(PricingError, match=named.replace("+", r"\+")):
        calculate_cost(engine, "openai", "gpt-4o", 1000, 500, **kwargs)
    with pytest.raises(CallError, match=named.replace("+", r"\+")):
        make_call("openai", "gpt-4o", 1000, 500, **kwargs)


def test_recorded_calls_keep_every_field_and_roll_up_exactly(engine: Engine) -> None:
    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    add_price(engine, "openai", "gpt-x", input_token_cost="0.000002", output_token_cost="0.000008")
    add_price(
        engine, "openai", "gpt-x", input_token_cost="0.000001", output_token_cost="0.000004", service_tier="batch"
    )
    moment = NOW - timedelta(hours=3)
    calls = [
        make_call(
            "anthropic",
            "claude-sonnet-4-5",
            1532,
            100,
            1111,
            user="u1",
            request_id="a-1",
            timestamp=moment,
            cache_write_tokens=300,
            cache_write_1h_tokens=118,
            web_search_calls=2,
            project="search",
            latency_ms=812,
            status="ok",
        ),
        make_call(
            "openai",
            "gpt-x",
            1000,
            1000,
            request_id="b-1",
            timestamp=moment,
            service_tier="batch",
            reasoning_tokens=400,
            project="batch-jobs",
        ),
        make_call(
            "openai", "gpt-x", 1000, 1000, request_id="f-1", timestamp=moment, service_tier="flex", status="error"
        ),
    ]
    assert record_batch(engine, calls).recorded == 3
    first = verify_call(engine, request_id="a-1")
    assert first is not None and first.matches
    assert (first.cache_write_tokens, first.cache_write_1h_tokens, first.web_search_calls) == (300, 118, 2)
    assert first.project == "search"
    assert first.stored_cost_total == first.at_its_time.cost_total
    batch = verify_call(engine, request_id="b-1")
    assert batch is not None and batch.matches and batch.stored_cost_total == Decimal("0.005")
    assert batch.stored_price_service_tier == "batch"
    flex = verify_call(engine, request_id="f-1")
    assert flex is not None and flex.matches and flex.stored_price_service_tier == "standard"
    assert check_rollups(engine).matches
    start, end = moment - timedelta(days=1), NOW + timedelta(hours=1)
    by_project = {r.key: r.totals for r in reports.breakdown(engine, start, end, "project")}
    assert set(by_project) == {"search", "batch-jobs", reports.NO_PROJECT}
    assert by_project["search"].web_search_calls == 2
    assert by_project["search"].cache_write_tokens == 300
    assert by_project["batch-jobs"].reasoning_tokens == 400
    only = reports.totals(engine, start, end, where={"project": "search"})
    assert only.calls == 1 and only.cost_total == first.stored_cost_total
    assert reports.totals(engine, start, end, where={"provider": "openai"}).calls == 2


def test_import_reads_every_field_of_a_call(engine: Engine, tmp_path) -> None:
    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    csv_file = tmp_path / "calls.csv"
    csv_file.write_text(
        "timestamp,provider,model,input_tokens,output_tokens,cached_input_tokens,cache_write_tokens,"
        "cache_write_1h_tokens,reasoning_tokens,web_search_calls,service_tier,project,latency_ms,status,request_id\n"
        f"{(NOW - timedelta(hours=1)).isoformat()},anthropic,claude-sonnet-4-5,1532,100,1111,418,0,0,1,standard,"
        "app,120,ok,c-1\n"
        f"{(NOW - timedelta(hours=1)).isoformat()},anthropic,claude-sonnet-4-5,10,100,5,6,0,0,0,standard,app,,ok,c-2\n"
        f"{(NOW - timedelta(hours=1)).isoformat()},anthropic,claude-sonnet-4-5,10,100,0,0,0,0,0,warp,app,,ok,c-3\n"
    )
    from core.recording.importer import import_file

    result = import_file(engine, csv_file)
    assert result.taken == 1
    reasons = dict(result.refused)
    assert "cached_input_tokens + cache_write_tokens" in reasons[3]
    assert "service_tier: 'warp'" in reasons[4]
    stored = verify_call(engine, request_id="c-1")
    assert stored is not None and stored.matches
    assert stored.stored_cost_total == Decimal("0.0034098") + Decimal("0.01")
    assert stored.project == "app"


def test_cli_cost_json_has_the_release_2_keys(
    engine: Engine, capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    code = main(
        [
            "cost",
            "--provider",
            "anthropic",
            "--model",
            "claude-sonnet-4-5",
            "--input-tokens",
            "1532",
            "--output-tokens",
            "100",
            "--cached-input-tokens",
            "1111",
            "--cache-write-tokens",
            "418",
            "--web-search-calls",
            "1",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
        "web_search_calls",
        "service_tier",
        "tier",
        "cost_web_search",
        "cost_request",
    ):
        assert key in out
    assert out["cost_total"] == "0.0134098"
    assert out["cost_web_search"] == "0.01"
    assert out["tier"] is None and out["service_tier"] == "standard"
    code = main(
        [
            "cost",
            "--provider",
            "openai",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "10",
            "--output-tokens",
            "5",
            "--reasoning-tokens",
            "6",
        ]
    )
    assert code == 2
    assert "reasoning_tokens: 6 is more than output_tokens (5)" in capsys.readouterr().err


def test_call_from_mapping_takes_the_project_of_the_key_unless_the_call_names_one() -> None:
    base = dict(timestamp=NOW.isoformat(), provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)
    assert call_from_mapping(base, default_project="from-key").project == "from-key"
    assert call_from_mapping({**base, "project": "own"}, default_project="from-key").project == "own"


def test_usage_log_filters_by_project_and_exports_every_field(engine: Engine) -> None:
    from core.reporting.logs import LogFilter, csv_chunks, fetch_page

    moment = NOW - timedelta(minutes=5)
    record_batch(
        engine,
        [
            make_call(
                "openai",
                "gpt-4o",
                100,
                10,
                request_id="p-1",
                timestamp=moment,
                project="alpha",
                cache_write_tokens=20,
                reasoning_tokens=3,
            ),
            make_call("openai", "gpt-4o", 100, 10, request_id="p-2", timestamp=moment, project="beta"),
        ],
    )
    page = fetch_page(engine, LogFilter(project="alpha"))
    assert [(r.request_id, r.project, r.cache_write_tokens, r.reasoning_tokens) for r in page.rows] == [
        ("p-1", "alpha", 20, 3)
    ]
    text = "".join(csv_chunks(engine, LogFilter(project="alpha")))
    header = next(csv.reader(io.StringIO(text)))  # text fields are quoted
    for name in (
        "project",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
        "web_search_calls",
        "service_tier",
        "tier",
        "cost_web_search",
        "cost_request",
    ):
        assert name in header
    assert len(text.splitlines()) == 2


GPT5_USAGE = {
    "prompt_tokens": 10000,
    "completion_tokens": 2000,
    "prompt_tokens_details": {"cached_tokens": 8000},
    "completion_tokens_details": {"reasoning_tokens": 1500},
}


def test_cli_cost_usage_object_is_the_issues_example(
    engine: Engine, capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    add_price(
        engine,
        "openai",
        "gpt-5-test",
        input_token_cost="0.00000125",
        output_token_cost="0.00001",
        cached_input_token_cost="0.000000125",
    )
    args = ["cost", "--provider", "openai", "--model", "gpt-5-test", "--usage", json.dumps(GPT5_USAGE), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["cost_total"], out["reasoning_tokens"], out["cached_input_tokens"]) == ("0.0235", 1500, 8000)
    assert main([*args[:-1], "--input-tokens", "5"]) == 2
    assert "--usage: given together with --input-tokens" in capsys.readouterr().err
    assert main(["cost", "--provider", "openai", "--model", "gpt-5-test", "--usage", '{"tokens": 5}']) == 2
    assert "usage" in capsys.readouterr().err


def test_import_json_lines_takes_a_usage_object_and_names_bad_ones(engine: Engine, tmp_path) -> None:
    from core.recording.importer import import_file

    add_price(engine, "anthropic", "claude-sonnet-4-5", **CLAUDE)
    moment = (NOW - timedelta(hours=1)).isoformat()
    anthropic_usage = {
        "input_tokens": 3,
        "cache_read_input_tokens": 1111,
        "cache_creation_input_tokens": 418,
        "output_tokens": 100,
    }
    lines = [
        {
            "timestamp": moment,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "request_id": "u-1",
            "usage": anthropic_usage,
            "project": "app",
        },
        {
            "timestamp": moment,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "request_id": "u-2",
            "usage": {**anthropic_usage, "cache_read_input_tokens": -1},
        },
        {
            "timestamp": moment,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "request_id": "u-3",
            "usage": anthropic_usage,
            "input_tokens": 5,
        },
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = import_file(engine, path)
    assert result.taken == 1
    reasons = dict(result.refused)
    assert "cache_read_input_tokens: -1 is negative" in reasons[2]
    assert "usage: given together with input_tokens" in reasons[3]
    stored = verify_call(engine, request_id="u-1")
    assert stored is not None and stored.matches
    assert stored.stored_cost_total == Decimal("0.0034098")
