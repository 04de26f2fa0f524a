"""docs/grafana-spendboard.json: an importable dashboard whose queries use only the metrics and labels /metrics has."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from core.reporting.metrics import BudgetFigure, Figures, UsageFigure, render

DASHBOARD = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-spendboard.json").read_text())


def exposed() -> dict[str, set[str]]:
    """Sample names and their label names, as a real scrape renders them."""
    figures = Figures(
        [UsageFigure("openai", "gpt-4o", "ok", 3, Decimal("0.5"), 10, 5, 1, 1, 1, 1)],
        0,
        [BudgetFigure("team", Decimal("1"), Decimal("10"))],
    )
    body, _ = render(figures)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def expressions() -> list[str]:
    found = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    found += [v["definition"] for v in DASHBOARD["templating"]["list"]]
    return found


def test_every_query_uses_a_metric_and_labels_that_metrics_exposes() -> None:
    metrics = exposed()
    assert set(metrics) == {
        "spendboard_cost_usd_total",
        "spendboard_calls_total",
        "spendboard_tokens_total",
        "spendboard_unpriced_calls_total",
        "spendboard_budget_spend_usd",
        "spendboard_budget_amount_usd",
    }
    used = set()
    for expr in expressions():
        for name in re.findall(r"\bspendboard_[a-z_]+", expr):
            assert name in metrics, f"{name} in {expr!r} is not exposed"
            used.add(name)
        labels = {label for group in re.findall(r"by \(([^)]*)\)", expr) for label in re.split(r",\s*", group)}
        labels |= set(re.findall(r"([a-z_]+)=~?\"", expr))
        labels |= set(re.findall(r"label_values\([a-z_]+, ([a-z_]+)\)", expr))
        known = set().union(*metrics.values())
        assert labels <= known, f"{labels - known} in {expr!r} are not labels of /metrics"
    assert used == set(metrics)  # every metric is shown somewhere
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            legend_labels = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            assert legend_labels <= set().union(*metrics.values())


def test_it_imports_into_any_grafana_with_a_prometheus_source() -> None:
    assert DASHBOARD["__inputs"][0]["pluginId"] == "prometheus"
    sources = {json.dumps(p["datasource"]) for p in DASHBOARD["panels"]}
    assert sources == {json.dumps({"type": "prometheus", "uid": "${DS_PROMETHEUS}"})}
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and DASHBOARD["uid"] == "spendboard-spend"
    assert not any("user" in expr for expr in expressions())  # no user label: bounded cardinality
