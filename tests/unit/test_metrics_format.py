"""Prometheus exposition, parsed back by prometheus_client's own parsers: the contract's names, labels, values."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY, Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from core.reporting.metrics import BudgetFigure, Figures, MetricsError, UsageFigure, render

D = Decimal

FIGURES = Figures(
    usage=[
        UsageFigure(
            provider="openai",
            model="gpt-4o",
            status="ok",
            calls=1200,
            cost_usd=D("12.3456789"),
            input_tokens=1_000_000,
            output_tokens=250_000,
            cached_input_tokens=400_000,
            cache_write_tokens=0,
            cache_write_1h_tokens=0,
            reasoning_tokens=50_000,
        ),
        UsageFigure("openai", "gpt-4o", "error", 3, D("0"), input_tokens=900),
        UsageFigure(
            "anthropic",
            "claude-sonnet-4-5",
            "ok",
            40,
            D("0.000001"),
            input_tokens=70_000,
            output_tokens=9_000,
            cached_input_tokens=20_000,
            cache_write_tokens=5_000,
            cache_write_1h_tokens=2_500,
        ),
    ],
    unpriced_calls=7,
    budgets=[
        BudgetFigure("team search", D("41.5"), D("100")),
        BudgetFigure('quote " and \\ backslash', D("0"), D("5.25")),
    ],
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in out, f"sample {key} twice"
            out[key] = sample.value
    return out


def test_the_text_format_parses_back_with_the_contracts_names_types_and_labels() -> None:
    body, content_type = render(FIGURES)
    text = body.decode()

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The parser names a counter family without "_total"; its samples carry it.
    assert {name: f.type for name, f in families.items()} == {
        "spendboard_cost_usd": "counter",
        "spendboard_calls": "counter",
        "spendboard_tokens": "counter",
        "spendboard_unpriced_calls": "counter",
        "spendboard_budget_spend_usd": "gauge",
        "spendboard_budget_amount_usd": "gauge",
    }
    labels = {f.name: {tuple(sorted(s.labels)) for s in f.samples} for f in families.values()}
    assert labels == {
        "spendboard_cost_usd": {("model", "provider", "status")},
        "spendboard_calls": {("model", "provider", "status")},
        "spendboard_tokens": {("model", "provider", "type")},
        "spendboard_unpriced_calls": {()},
        "spendboard_budget_spend_usd": {("budget",)},
        "spendboard_budget_amount_usd": {("budget",)},
    }
    assert "user" not in text
    assert {s.name for f in families.values() for s in f.samples} == {
        "spendboard_cost_usd_total",
        "spendboard_calls_total",
        "spendboard_tokens_total",
        "spendboard_unpriced_calls_total",
        "spendboard_budget_spend_usd",
        "spendboard_budget_amount_usd",
    }


def test_values_are_the_figures() -> None:
    got = samples(render(FIGURES)[0].decode())

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert at("spendboard_cost_usd_total", provider="openai", model="gpt-4o", status="ok") == 12.3456789
    assert at("spendboard_cost_usd_total", provider="anthropic", model="claude-sonnet-4-5", status="ok") == 1e-06
    assert at("spendboard_calls_total", provider="openai", model="gpt-4o", status="error") == 3
    # tokens are summed over statuses; cache_write holds the 5-minute and the 1-hour writes
    openai = {t: at("spendboard_tokens_total", provider="openai", model="gpt-4o", type=t) for t in TYPES}
    assert openai == {
        "input": 1_000_900,
        "output": 250_000,
        "cached_input": 400_000,
        "cache_write": 0,
        "reasoning": 50_000,
    }
    anthropic = {
        t: at("spendboard_tokens_total", provider="anthropic", model="claude-sonnet-4-5", type=t) for t in TYPES
    }
    assert anthropic == {"input": 70_000, "output": 9_000, "cached_input": 20_000, "cache_write": 7_500, "reasoning": 0}
    assert at("spendboard_unpriced_calls_total") == 7
    assert at("spendboard_budget_spend_usd", budget="team search") == 41.5
    assert at("spendboard_budget_amount_usd", budget="team search") == 100
    assert at("spendboard_budget_amount_usd", budget='quote " and \\ backslash') == 5.25
    assert len([k for k in got if k[0] == "spendboard_tokens_total"]) == 2 * len(TYPES)


TYPES = ("input", "output", "cached_input", "cache_write", "reasoning")


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it() -> None:
    body, content_type = render(FIGURES, "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")

    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in openmetrics_families(body.decode())}
    assert families["spendboard_cost_usd"].type == "counter"
    assert [s.value for s in families["spendboard_unpriced_calls"].samples] == [7]


def test_a_scrape_exposes_only_its_figures_never_the_process_registry() -> None:
    stray = Counter("spendboard_stray_test", "registered in the default registry")
    try:
        stray.inc()
        first = render(Figures(unpriced_calls=1))[0].decode()
        second = render(Figures(unpriced_calls=2))[0].decode()
    finally:
        REGISTRY.unregister(stray)

    assert "spendboard_stray_test" not in first and "python_info" not in first
    assert samples(first)[("spendboard_unpriced_calls_total", ())] == 1
    assert samples(second)[("spendboard_unpriced_calls_total", ())] == 2


def test_no_usage_still_names_every_family() -> None:
    text = render(Figures())[0].decode()
    assert {f.name for f in text_string_to_metric_families(text)} == {
        "spendboard_cost_usd",
        "spendboard_calls",
        "spendboard_tokens",
        "spendboard_unpriced_calls",
        "spendboard_budget_spend_usd",
        "spendboard_budget_amount_usd",
    }


@pytest.mark.parametrize(
    ("figures", "message"),
    [
        (Figures(usage=[UsageFigure("openai", "gpt-4o", "ok", 1, 0.5)]), "cost_usd: 0.5 is not a non-negative"),  # type: ignore[arg-type]
        (Figures(usage=[UsageFigure("openai", "gpt-4o", "ok", -1, D(0))]), "calls: -1 is not a non-negative"),
        (Figures(usage=[UsageFigure("", "gpt-4o", "ok", 1, D(0))]), "provider: '' is not a non-empty text"),
        (
            Figures(usage=[UsageFigure("openai", "m", "ok", 1, D(0)), UsageFigure("openai", "m", "ok", 2, D(0))]),
            "usage: provider/model/status openai/m/ok is given twice",
        ),
        (Figures(budgets=[BudgetFigure("b", D("NaN"), D(1))]), "spend_usd: Decimal('NaN') is not a non-negative"),
        (Figures(budgets=[BudgetFigure("b", D(1), D(1))] * 2), "budget: 'b' is given twice"),
        (Figures(unpriced_calls=True), "unpriced_calls: True is not a non-negative whole number"),
    ],
)
def test_bad_figures_are_refused_naming_the_field(figures: Figures, message: str) -> None:
    with pytest.raises(MetricsError) as caught:
        render(figures)
    assert str(caught.value).startswith(message)
