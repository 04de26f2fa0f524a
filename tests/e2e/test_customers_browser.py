"""The Customers page in Chromium: the month's billable and margin per customer, the calls billed to
nobody, and a PDF statement downloaded and read back by pdftotext; the Overview's tag table."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, needs_chromium, streamlit_server

from core.customers import service
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine

pytestmark = [pytest.mark.browser, needs_chromium]


def _this_month() -> datetime:
    now = datetime.now(UTC)
    return max(now - timedelta(minutes=5), now.replace(day=1, hour=0, minute=0, second=1, microsecond=0))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("customers_browser")
    url = f"sqlite:///{folder / 'spendboard.db'}"
    env = {"DATABASE_URL": url, "SPENDBOARD_ADMIN_PASSWORD": "browser-test-password"}
    with streamlit_server(ROOT / "server.py", env, folder / "server.log") as base:
        yield base, url


def _open(page, base: str, path: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/{path}")
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_customers_page_and_pdf_statement(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    base, url = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True, timezone_id="UTC"
        )
        page = context.new_page()
        _open(page, base)  # the app creates the tables on first visit
        engine = make_engine(url)
        at = _this_month()
        # the estimate: USD 1 per 1M input tokens
        record_batch(
            engine,
            [
                make_call("acmeai", "m1", 10_000_000, 0, timestamp=at, project="acme", tags=["feature:summarize"]),
                make_call("acmeai", "m2", 2_340_000, 0, timestamp=at, project="acme", tags=["feature:summarize"]),
                make_call("acmeai", "m1", 3_000_000, 0, timestamp=at, project="other"),
            ],
        )
        service.add_customer(engine, "Acme GmbH", "project:acme", "20")
        engine.dispose()
        _open(page, base, "customers")
        main = page.get_by_test_id("stMainBlockContainer")
        main.get_by_text("matched no customer").wait_for(timeout=20_000)
        assert "1 call this month ($3.00" in main.inner_text()
        table = page.get_by_test_id("stDataFrame").first
        table.wait_for()
        assert "billable **" not in main.inner_text()  # markdown rendered, not shown raw
        assert "$14.81" in main.inner_text() and "$2.47" in main.inner_text()
        with page.expect_download(timeout=30_000) as info:
            page.get_by_role("button", name="Download PDF statement").click()
        pdf = tmp_path / "statement.pdf"
        info.value.save_as(pdf)
        assert pdf.read_bytes().startswith(b"%PDF-")
        if shutil.which("pdftotext"):
            text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True)
            assert "Customer: Acme GmbH" in text.stdout and "Total due: USD 14.81" in text.stdout
        shots = ROOT / "test-artifacts" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "customers.png"), full_page=True)
        _open(page, base)
        page.get_by_role("tab", name="Tags").click()  # the breakdown tabs run only the open one's query
        page.get_by_text("the rows overlap", exact=False).first.wait_for(timeout=20_000)  # drawn after the heading
        context.close()
        browser.close()
