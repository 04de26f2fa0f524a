"""The dashboard in a real browser: Debian's Chromium through Playwright against ``streamlit run``.

Screenshots of each page go to ``test-artifacts/screenshots/`` (git-ignored), or to the folder
named by ``SPENDBOARD_SCREENSHOTS``: ``make screenshots`` points it at ``docs/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, needs_chromium, streamlit_server

from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine

# relative to the repository: the tests run in a temporary working directory
SHOTS = ROOT / Path(os.environ.get("SPENDBOARD_SCREENSHOTS") or "test-artifacts/screenshots")
PASSWORD = "browser-test-password"

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'spendboard.db'}"
    env = {"DATABASE_URL": url, "SPENDBOARD_ADMIN_PASSWORD": PASSWORD}
    with streamlit_server(ROOT / "server.py", env, folder / "server.log") as base:
        yield base, url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    yield tab
    context.close()


def _open(page, base: str, path: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/{path}")
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=20_000)
    _settle(page)


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def _no_exception(page) -> None:  # type: ignore[no-untyped-def]
    assert page.locator('[data-testid="stException"]').count() == 0


def _add_budgets(url: str) -> None:
    """Two budgets over the demo data, so the Budgets page (and its screenshot) shows progress and a chart."""
    from core.budgets import service
    from core.storage.engine import make_engine

    engine = make_engine(url)
    try:
        service.add_budget(engine, service.validate("all-teams", "150", "month", tz="Europe/Berlin"))
        service.add_budget(engine, service.validate("openai-daily", "2", "day", scope="provider:openai"))
    finally:
        engine.dispose()


def test_every_page_loads_and_the_chart_renders(server, page) -> None:  # type: ignore[no-untyped-def]
    base, url = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    _open(page, base)
    _no_exception(page)
    page.get_by_label("Admin password").fill(PASSWORD)  # demo data is the admin's to load
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector('button:has-text("Load demo data")', timeout=20_000)
    page.screenshot(path=str(SHOTS / "overview_empty.png"))
    page.get_by_role("button", name="Load demo data").click()
    page.wait_for_selector(".spend-chart .sc-bar", timeout=90_000)
    _settle(page)
    assert page.locator(".spend-chart .sc-bar").count() >= 10  # the stacked bars
    assert page.get_by_role("button", name="Load demo data").count() == 0
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    bars = page.locator(".spend-chart .sc-bar")
    bar = bars.nth(bars.evaluate_all("bs => bs.reduce((t, b, i) => b.offsetHeight > bs[t].offsetHeight ? i : t, 0)"))
    bar.scroll_into_view_if_needed()
    bar.hover()  # its exact amount shows above it
    assert re.fullmatch(r'"\w{3} \d+ · \S+: \$[0-9.,]+"', bar.evaluate("e => getComputedStyle(e, '::after').content"))
    # the breakdown tabs: the providers' table first; another tab's table is read and drawn when opened
    assert page.locator(".st-key-breakdown_provider").count() == 1
    assert page.locator(".st-key-breakdown_user").count() == 0
    page.get_by_role("tab", name="Users").click()
    page.locator('.st-key-breakdown_user [data-testid="stDataFrame"]').wait_for(timeout=20_000)
    page.get_by_text(re.compile(r"^All \d+ users\.$")).wait_for(timeout=20_000)  # its caption counts them
    # the counts behind the spend: drawn once their expander is opened
    assert page.get_by_test_id("stMetricLabel").filter(has_text="Input tokens").count() == 0
    page.get_by_text("Tokens, cache writes, reasoning and web searches").click()
    page.get_by_test_id("stMetricLabel").filter(has_text="Reasoning tokens").wait_for(timeout=20_000)
    _no_exception(page)
    _add_budgets(url)
    for path, name in (
        ("logs", "usage_logs"),
        ("budgets", "budgets"),
        ("pricing", "pricing"),
        ("calculator", "calculator"),
        ("keys", "api_keys"),
    ):
        _open(page, base, path)
        _no_exception(page)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_calculator_flow(server, page) -> None:  # type: ignore[no-untyped-def]
    base, _url = server
    _open(page, base, "calculator")
    page.get_by_role("textbox", name="Model", exact=True).first.fill("openai/gpt-oss-120b:groq")
    page.get_by_label("Input tokens", exact=True).first.fill("1000")
    page.get_by_label("Output tokens", exact=True).first.fill("500")
    page.get_by_label("Output tokens", exact=True).first.press("Enter")
    _settle(page)
    assert page.get_by_test_id("stMetricValue").first.inner_text() == "$0.0025"
    assert "cost_total = $0.0025" in page.get_by_test_id("stCode").first.inner_text()
    _no_exception(page)


def test_edit_then_calculate(server, page) -> None:  # type: ignore[no-untyped-def]
    base, _url = server
    _open(page, base, "pricing")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for(timeout=20_000)
    page.get_by_role("textbox", name="Provider", exact=True).fill("huggingface")
    page.get_by_role("textbox", name="Model name", exact=True).fill("browser-model")
    page.get_by_label("Input per 1M tokens (USD)", exact=True).fill("5")
    page.get_by_label("Output per 1M tokens (USD)", exact=True).fill("7")
    page.get_by_role("button", name="Save new price version").click()
    page.get_by_text("Saved as price version").wait_for(timeout=20_000)
    _no_exception(page)
    _open(page, base, "calculator")
    page.get_by_role("textbox", name="Model", exact=True).first.fill("browser-model")
    page.get_by_role("textbox", name="Model", exact=True).first.press("Enter")
    _settle(page)
    # 1000 * 0.000005 + 500 * 0.000007
    page.get_by_test_id("stMetricValue").filter(has_text="$0.0085").wait_for(timeout=20_000)
    _no_exception(page)


def test_csv_download_from_usage_logs(server, page) -> None:  # type: ignore[no-untyped-def]
    base, url = server
    _open(page, base, "logs")  # the app creates the tables on first visit
    engine = make_engine(url)
    record_usage(engine, make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, request_id="browser-1"))
    engine.dispose()
    _open(page, base, "logs")
    link = page.get_by_role("link", name="Download CSV of the filtered calls")
    with page.context.expect_event("download", timeout=30_000) as info:
        link.click()
    text = Path(info.value.path()).read_text()
    rows = list(csv.reader(io.StringIO(text)))  # every text field quoted (OWASP CSV injection)
    assert rows[0][:4] == ["id", "timestamp", "provider", "model"] and text.startswith('"id","timestamp"')
    assert any(row[rows[0].index("request_id")] == "browser-1" and "0.0025" in row for row in rows[1:])
    _no_exception(page)
    # the export is served by server.py, streamed; a bad filter is refused by name, not with a traceback
    refused = page.request.get(f"{base}/export/usage.csv?matched_by=guess")
    assert refused.status == 400 and "matched_by" in refused.text()


@pytest.mark.parametrize("path", ["calculator", "pricing"])
def test_a_first_visit_to_a_deep_link_renders_the_whole_app(browser, tmp_path: Path, path: str) -> None:  # type: ignore[no-untyped-def]
    """A fresh server whose first request is /calculator (or /pricing): the app as / shows it."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'deep.db'}", "SPENDBOARD_ADMIN_PASSWORD": PASSWORD}
    with streamlit_server(ROOT / "server.py", env, tmp_path / "server.log") as base:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            _open(page, base, path)
            _no_exception(page)
            # Streamlit's automatic page list (from a folder named pages/) is not shown
            assert page.get_by_test_id("stSidebarNav").count() == 0
            # the top navigation of st.navigation, with every page
            nav = page.get_by_test_id("stTopNavLink")
            nav.first.wait_for(timeout=20_000)
            labels = {text.strip().splitlines()[-1] for text in nav.all_inner_texts()}  # after the icon's name
            assert {"Overview", "Usage logs", "Pricing", "Calculator"} <= labels
            # the filters the page reads (issue 22, point 15): the Calculator none, Pricing the zone only
            sidebar = page.get_by_test_id("stSidebar")
            if path == "pricing":
                sidebar.get_by_text("Time zone", exact=True).first.wait_for(timeout=20_000)
                assert sidebar.get_by_text("Filters", exact=True).count() == 1
            else:
                assert sidebar.count() == 0 or sidebar.get_by_text("Time zone", exact=True).count() == 0
            assert page.get_by_test_id("stSidebar").get_by_text("Period", exact=True).count() == 0
            # and the wide layout
            width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
            assert width > 900, width  # "centered" is 736 px wide
            assert "Spendboard" in page.title()
        finally:
            context.close()


def test_the_browser_asks_no_host_but_the_dashboard(server, browser) -> None:  # type: ignore[no-untyped-def]
    """Every request the pages make (icons and fonts included) goes to the dashboard itself."""
    base, _url = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    try:
        page = context.new_page()
        for path in ("", "logs", "pricing", "calculator"):
            _open(page, base, path)
            page.wait_for_timeout(500)
    finally:
        context.close()
    own = urlsplit(base).netloc
    foreign = sorted({u for u in requests if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc != own})
    assert requests and not foreign, foreign
