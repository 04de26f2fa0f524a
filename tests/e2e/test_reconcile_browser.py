"""The Reconciliation page in Chromium: the figures, the chart with both series, the key never shown.

A screenshot goes to ``test-artifacts/screenshots/reconciliation.png`` (or the folder named by
``SPENDBOARD_SCREENSHOTS``; the README's is ``docs/screenshots/reconciliation.png``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, needs_chromium, streamlit_server

from core.money import format_total
from core.pricing.seeding import initialize_default_pricing
from core.reconcile.lines import CostLine, Fetched, UsageLine, day_range
from core.reconcile.report import PROVIDERS, computed_by_day, coverage, reconcile
from core.reconcile.store import store_fetched
from core.recording.demo import load_demo
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database

SHOTS = ROOT / Path(os.environ.get("SPENDBOARD_SCREENSHOTS") or "test-artifacts/screenshots")
ADMIN_KEY = "sk-admin-browser-secret-0123456789"
DAYS = 30
DATED = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}

pytestmark = [pytest.mark.browser, needs_chromium]


def _bills(url: str) -> tuple[Decimal, Decimal, Decimal | None]:
    """Demo calls over 30 days and each provider's bill for them: most days agree; every 6th day the
    provider billed 8 % more tokens than were logged; one day nothing billed; one web search fee."""
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        initialize_default_pricing(engine)
        load_demo(engine, days=DAYS, rows=4000)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=DAYS)
        rows = computed_by_day(engine, PROVIDERS, first, today, by_model=True)
        for provider in PROVIDERS:
            costs, usage = [], []
            for p, day, model, cost, _calls, tokens_in, tokens_out in rows:
                if p != provider or day == today - timedelta(days=4):  # not billed that day
                    continue
                short = day.toordinal() % 6 == 0
                factor = Decimal("1.08") if short else Decimal(1)
                name = DATED.get(model, model)
                costs.append(CostLine(provider, day, name, "output", (cost * factor).quantize(Decimal("1e-12"))))
                usage.append(
                    UsageLine(provider, day, name, int(tokens_in * factor), int(tokens_out * factor), 0, 0, 0, None)
                )
            if provider == "openai":
                costs.append(
                    CostLine(provider, today - timedelta(days=9), "web search tool calls", None, Decimal("0.75"))
                )
            days = day_range(first, today + timedelta(days=1))
            store_fetched(engine, Fetched(provider, tuple(costs), tuple(usage), days, days))
        start = today - timedelta(days=29)  # the sidebar's default period: the last 30 days
        result = reconcile(engine, since=start, until=today)
        by_model = reconcile(engine, since=start, until=today, by="model")
        return result.totals.billed, result.totals.computed, coverage(by_model.rows)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, tuple[Decimal, Decimal, Decimal | None]]]:
    folder = tmp_path_factory.mktemp("reconcile_browser")
    url = f"sqlite:///{folder / 'spendboard.db'}"
    expected = _bills(url)
    env = {"DATABASE_URL": url, "OPENAI_ADMIN_KEY": ADMIN_KEY, "SPENDBOARD_BUDGET_WORKER": "0"}
    with streamlit_server(ROOT / "server.py", env, folder / "server.log") as base:
        yield base, expected


def test_the_page_shows_billed_against_computed_and_never_the_key(server) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    base, (billed, computed, share) = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(f"{base}/reconciliation")
            page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
            page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot', timeout=60_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
            page.wait_for_timeout(500)
            assert page.locator('[data-testid="stException"]').count() == 0
            values = page.get_by_test_id("stMetricValue").all_inner_texts()
            assert format_total(billed) in values and format_total(computed) in values
            assert share is not None and f"{(share * 100).quantize(Decimal('0.1'))}%" in values
            legend = page.locator(".js-plotly-plot .legendtext").evaluate_all("els => els.map(e => e.textContent)")
            assert sorted(legend) == ["billed (provider)", "computed (logged calls)", "out of tolerance"]
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() == 3
            assert page.locator('[data-testid="stDataFrame"]').count() == 2
            page.get_by_text("How to fetch the provider's bill").click()
            page.wait_for_selector('button:has-text("Fetch the last 31 days from OpenAI")', timeout=10_000)
            assert page.locator("code", has_text="--provider anthropic").count() >= 1  # no Anthropic key: the command
            assert ADMIN_KEY not in page.content()
            page.get_by_text("How to fetch the provider's bill").click()  # closed again for the picture
            page.wait_for_timeout(300)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "reconciliation.png"), full_page=True)
        finally:
            browser.close()
