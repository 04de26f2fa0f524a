"""The Overview page in Chromium, where its time goes, and the app's peak memory, at each size (SQLite).

Goals: the Overview's content (KPIs, the spend chart, the breakdown tables) drawn within
1.5 s of asking for the page on a return visit at 1M calls (issue 22, point 19), and the
server's peak RSS under 400 MB. Each browser figure is the median of 5 page loads on a
running server, split into: until the page's title is drawn (Streamlit's frontend booted
and the script's first output arrived), the KPIs, the breakdown tables, and the chart
(its bars drawn). Beside them, the server's own parts, in process: the Overview script
run with its cached reads warm (what a return visit costs the server), the same with every
cache cleared (the queries), and building the chart's HTML. Before the browser runs, the
server's loop has judged the anomaly hours it would catch up on at start
(``python -m core anomalies``): a server that has been running.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT, demo_database, figure, sizes, timed

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SPENDBOARD_ADMIN_PASSWORD": "bench-only",
        "SPENDBOARD_BUDGET_WORKER": "1",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "server.py"),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.address",
        "127.0.0.1",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("streamlit did not start within 60 s")


STEPS = ("title", "KPIs", "tables", "chart", "all")


def _load_overview(opener, base: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds from navigation until the title, the KPIs, the breakdown tables, the chart, and all of them are drawn."""
    page = (
        opener.new_page(viewport={"width": 1400, "height": 1000}) if hasattr(opener, "contexts") else opener.new_page()
    )
    started = time.perf_counter()
    page.goto(base)
    seen = {}
    page.get_by_test_id("stHeading").first.wait_for(timeout=60_000)
    seen["title"] = time.perf_counter() - started
    page.get_by_test_id("stMetricValue").first.wait_for(timeout=60_000)
    seen["KPIs"] = time.perf_counter() - started
    # the breakdown tabs' open table (providers); the others run only when their tab is opened
    page.locator('.st-key-breakdown_provider [data-testid="stDataFrame"]').wait_for(timeout=60_000)
    seen["tables"] = time.perf_counter() - started
    page.locator(".spend-chart .sc-bar").first.wait_for(timeout=60_000)  # the chart's first bar, drawn
    seen["chart"] = time.perf_counter() - started
    seen["all"] = max(seen.values())
    if page.get_by_test_id("stException").count():
        raise SystemExit("the Overview showed an exception")
    page.close()
    return seen


def _server_parts(url: str, label: str) -> None:
    """The server's side, in process: the script with warm caches, with cold caches, and the chart's figure."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["DATABASE_URL"] = url
    os.environ["SPENDBOARD_BUDGET_WORKER"] = "0"  # no loop in this process: it would take the browser's CPU
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    warm = statistics.median(_timed_run(at) for _ in range(5))
    cold = []
    for _ in range(3):
        st.cache_data.clear()
        cold.append(_timed_run(at))
    figure(f"Overview script, cached reads warm (server), {label}", warm * 1000, "ms")
    figure(f"Overview script, every cache cleared (queries), {label}", statistics.median(cold) * 1000, "ms")
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from core.reporting.aggregates import axis_periods, over_time
    from core.storage.engine import make_engine
    from ui.charts import chart_html, spend_chart

    engine = make_engine(url)
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    utc = ZoneInfo("UTC")
    rows = over_time(engine, start, end, utc, "day", "provider")
    axis = axis_periods(start, end, utc, "day")
    built = timed(lambda: chart_html(spend_chart(rows, "Provider", "day", (), utc, axis)))
    figure(f"the spend chart's HTML built, {label}", built * 1000, "ms")
    engine.dispose()


def _timed_run(at) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    at.run()
    if at.exception:
        raise SystemExit(f"the Overview raised: {at.exception[0].value}")
    return time.perf_counter() - started


def main() -> None:
    if not Path(CHROMIUM).exists():
        print(f"(skipped: {CHROMIUM} is not installed; apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    first_ms: float | None = None
    for label, rows in sizes():
        _engine, url, _built = demo_database("sqlite", label, rows)
        _engine.dispose()
        # what the server's loop catches up on at its first start (the last 7 days' hours), done beforehand
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "core", "anomalies"], cwd=ROOT, env=env, check=True, capture_output=True)
        _server_parts(url, label)
        port = _free_port()
        server = _start(url, port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                base = f"http://127.0.0.1:{port}/"
                _load_overview(browser, base)  # the server's first run: imports, price seeding
                # a first visit: a new browser context each time, nothing cached
                cold = statistics.median(_load_overview(browser, base)["all"] for _ in range(3))
                # a return visit: one context, Streamlit's scripts already cached, each visit in a new tab
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                _load_overview(context, base)
                runs = [_load_overview(context, base) for _ in range(5)]
                browser.close()
            figure(f"Overview in Chromium, first visit (empty cache): all drawn, {label}", cold * 1000, "ms")
            for step in STEPS:
                warm = statistics.median(r[step] for r in runs)
                if step == "all":
                    first_ms = first_ms or warm * 1000
                figure(
                    f"Overview in Chromium, return visit: {step} drawn, {label}",
                    warm * 1000,
                    "ms",
                    **(
                        {"baseline": "first size", "ratio": warm * 1000 / first_ms}
                        if step == "all" and first_ms
                        else {}
                    ),
                    best=min(r[step] for r in runs) * 1000,
                )
            figure(f"app peak RSS, {label}", _peak_rss_mb(server.pid), "MB")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
