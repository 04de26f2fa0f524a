"""Page addresses in any case, and filters only on the pages they affect (issue 22, points 15 and 18)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, needs_chromium, streamlit_server

from ui.navigation import canonical_path


@pytest.mark.parametrize(
    ("path", "target"),
    [("/Calculator", "/calculator"), ("/CALCULATOR/", "/calculator"), ("/Logs", "/logs"), ("/calculator", None),
     ("/", None), ("/api/v1/calls", None), ("/nowhere", None)],
)  # fmt: skip
def test_a_page_address_in_another_case_has_one_canonical_form(path: str, target: str | None) -> None:
    assert canonical_path(path) == target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("navigation")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'spendboard.db'}", "SPENDBOARD_ADMIN_PASSWORD": "pw-navigation"}
    with streamlit_server(ROOT / "server.py", env, folder / "server.log") as base:
        yield base


def test_the_server_sends_another_case_to_the_page_keeping_the_query(server: str) -> None:
    answer = requests.get(f"{server}/Calculator?verify=3", allow_redirects=False, timeout=10)
    assert answer.status_code == 308 and answer.headers["location"] == "/calculator?verify=3"
    assert requests.get(f"{server}/calculator", allow_redirects=False, timeout=10).status_code == 200


@needs_chromium
def test_pages_in_chromium_show_only_the_filters_they_read(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def open_page(path: str) -> str:
            page.goto(f"{server}{path}")
            page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
            page.wait_for_timeout(500)
            sidebar = page.locator('[data-testid="stSidebar"]')
            return sidebar.inner_text() if sidebar.count() else ""

        calculator = open_page("/Calculator")
        assert page.locator("h1").first.inner_text() == "Calculator" and page.url.endswith("/calculator")
        assert "Period" not in calculator and "Time zone" not in calculator  # nothing there reads them
        logs = open_page("/logs")
        assert "Period" in logs and "Time zone" in logs
        keys = open_page("/keys")
        assert "Period" not in keys and "Time zone" in keys  # key times are shown in the zone
        browser.close()


@pytest.mark.parametrize("path", ["/api/v1/calls", "/v1/traces", "/api/v1/litellm", "/api/v1/check"])
def test_a_get_on_a_post_route_is_405_not_the_dashboards_page(server: str, path: str) -> None:
    """Issue 22, point 12: a GET answered 200 with the app's HTML page."""
    answer = requests.get(f"{server}{path}", timeout=10)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.headers["content-type"].startswith("application/json") and "POST" in answer.json()["error"]


def test_a_client_not_speaking_otlp_gets_a_json_answer(server: str) -> None:
    """Issue 22, point 12: /v1/traces answered protobuf bytes to curl (a stray "U" on the terminal)."""
    answer = requests.post(f"{server}/v1/traces", data="hello", headers={"Content-Type": "text/plain"}, timeout=10)
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("application/json")
    assert "API key" in answer.json()["message"]
