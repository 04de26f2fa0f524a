"""Prometheus exposition of spend figures, made with ``prometheus_client`` (DESIGN.md, "Figures for other tools").

Each scrape builds a fresh ``CollectorRegistry`` holding one collector over the figures
read for it, and renders it with the library's own ``generate_latest`` (or the OpenMetrics
encoder when the scraper asks for it). Metrics, as the contract names them:

- ``spendboard_cost_usd_total`` and ``spendboard_calls_total`` (counters) by ``provider``, ``model``, ``status``;
- ``spendboard_tokens_total`` (counter) by ``provider``, ``model``, ``type``: ``input`` (all input tokens),
  ``output`` (all output tokens), ``cached_input``, ``cache_write`` (5-minute and 1-hour writes), ``reasoning``;
- ``spendboard_unpriced_calls_total`` (counter, no labels): calls priced at the estimate;
- ``spendboard_budget_spend_usd`` and ``spendboard_budget_amount_usd`` (gauges) by ``budget``, for the
  budget's current period.

No user label: cardinality stays bounded by providers, models and budgets. Every exact
``Decimal`` becomes a float once, at the end; token counts are summed as integers first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

# Counter names without ``_total``: CounterMetricFamily appends it to the sample name.
COST = "spendboard_cost_usd"
CALLS = "spendboard_calls"
TOKENS = "spendboard_tokens"
UNPRICED = "spendboard_unpriced_calls"
BUDGET_SPEND = "spendboard_budget_spend_usd"
BUDGET_AMOUNT = "spendboard_budget_amount_usd"
TOKEN_TYPES = ("input", "output", "cached_input", "cache_write", "reasoning")


class MetricsError(ValueError):
    """Figures that cannot be exposed; the message names the field and the value."""


@dataclass(frozen=True)
class UsageFigure:
    """Totals of the calls of one provider, model and status (``ok`` or ``error``), all time."""

    provider: str
    model: str
    status: str
    calls: int
    cost_usd: Decimal
    input_tokens: int = 0  # all input tokens, cache reads and writes included
    output_tokens: int = 0  # all output tokens, reasoning included
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute writes
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class BudgetFigure:
    """A budget's spend and amount in its current period (USD)."""

    budget: str
    spend_usd: Decimal
    amount_usd: Decimal


@dataclass(frozen=True)
class Figures:
    """What one scrape exposes."""

    usage: Sequence[UsageFigure] = ()
    unpriced_calls: int = 0
    budgets: Sequence[BudgetFigure] = field(default=())


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MetricsError(f"{name}: {value!r} is not a non-negative whole number")
    return value


def _money(value: object, name: str) -> float:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise MetricsError(f"{name}: {value!r} is not a non-negative, finite Decimal")
    return float(value)


def _label(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise MetricsError(f"{name}: {value!r} is not a non-empty text")
    return value


def metric_families(figures: Figures) -> list[Metric]:
    """The contract's metric families for ``figures``; bad figures raise :class:`MetricsError` naming the field."""
    cost = CounterMetricFamily(COST, "Cost of the recorded calls in USD.", labels=["provider", "model", "status"])
    calls = CounterMetricFamily(CALLS, "Recorded calls.", labels=["provider", "model", "status"])
    tokens: dict[tuple[str, str], list[int]] = {}
    seen: set[tuple[str, str, str]] = set()
    for figure in figures.usage:
        key = (
            _label(figure.provider, "provider"),
            _label(figure.model, "model"),
            _label(figure.status, "status"),
        )
        if key in seen:
            raise MetricsError(f"usage: provider/model/status {'/'.join(key)} is given twice")
        seen.add(key)
        cost.add_metric(list(key), _money(figure.cost_usd, "cost_usd"))
        calls.add_metric(list(key), float(_count(figure.calls, "calls")))
        counts = (
            _count(figure.input_tokens, "input_tokens"),
            _count(figure.output_tokens, "output_tokens"),
            _count(figure.cached_input_tokens, "cached_input_tokens"),
            _count(figure.cache_write_tokens, "cache_write_tokens")
            + _count(figure.cache_write_1h_tokens, "cache_write_1h_tokens"),
            _count(figure.reasoning_tokens, "reasoning_tokens"),
        )
        sums = tokens.setdefault(key[:2], [0] * len(TOKEN_TYPES))
        for i, count in enumerate(counts):
            sums[i] += count
    token_family = CounterMetricFamily(
        TOKENS, "Tokens of the recorded calls, by type.", labels=["provider", "model", "type"]
    )
    for (provider, model), sums in tokens.items():
        for kind, total in zip(TOKEN_TYPES, sums, strict=True):
            token_family.add_metric([provider, model, kind], float(total))
    unpriced = CounterMetricFamily(
        UNPRICED,
        "Calls with no price for their model, counted at the USD 1 per 1M tokens estimate.",
        value=float(_count(figures.unpriced_calls, "unpriced_calls")),
    )
    spend = GaugeMetricFamily(BUDGET_SPEND, "Spend of the budget's current period in USD.", labels=["budget"])
    amount = GaugeMetricFamily(BUDGET_AMOUNT, "Amount of the budget for its period in USD.", labels=["budget"])
    names: set[str] = set()
    for budget in figures.budgets:
        name = _label(budget.budget, "budget")
        if name in names:
            raise MetricsError(f"budget: {name!r} is given twice")
        names.add(name)
        spend.add_metric([name], _money(budget.spend_usd, "spend_usd"))
        amount.add_metric([name], _money(budget.amount_usd, "amount_usd"))
    return [cost, calls, token_family, unpriced, spend, amount]


class FiguresCollector(Collector):
    """Yields metric families built (and checked) beforehand, so a bad figure fails before rendering starts."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def registry_for(figures: Figures) -> CollectorRegistry:
    """A fresh registry holding only these figures (nothing from the process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)  # collect() then runs once per scrape, at render time
    registry.register(FiguresCollector(metric_families(figures)))
    return registry


def render(figures: Figures, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its Content-Type.

    Without an ``Accept`` header: Prometheus text format 0.0.4 from ``generate_latest``; a scraper
    asking for ``application/openmetrics-text`` gets OpenMetrics, as ``prometheus_client`` negotiates it.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry_for(figures)), content_type
