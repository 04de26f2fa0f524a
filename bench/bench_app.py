"""The Overview page fully rendered in Chromium, and the app's peak memory, at each size (SQLite).

Goal at 10M calls: the Overview (KPIs, the spend chart, the breakdown tables) drawn
within 2 s of asking for the page, and the server's peak RSS under 400 MB. Each
figure is the median of 3 page loads on a running server (the first load, which
also seeds prices, is reported separately).
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

from common import ROOT, demo_database, figure, sizes

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
    env = {**os.environ, "DATABASE_URL": url, "SPENDBOARD_ADMIN_PASSWORD": "bench-only"}
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


def _load_overview(opener, base: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds from navigation until the KPIs, and until the chart and breakdown tables, are drawn."""
    page = (
        opener.new_page(viewport={"width": 1400, "height": 1000}) if hasattr(opener, "contexts") else opener.new_page()
    )
    started = time.perf_counter()
    page.goto(base)
    page.get_by_test_id("stMetricValue").first.wait_for(timeout=60_000)
    kpis = time.perf_counter() - started
    page.locator(".js-plotly-plot .bars, .js-plotly-plot .trace").first.wait_for(timeout=60_000)
    page.get_by_test_id("stDataFrame").nth(2).wait_for(timeout=60_000)
    elapsed = time.perf_counter() - started
    if page.get_by_test_id("stException").count():
        raise SystemExit("the Overview showed an exception")
    page.close()
    return kpis, elapsed


def main() -> None:
    if not Path(CHROMIUM).exists():
        print(f"(skipped: {CHROMIUM} is not installed; apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    first_ms: float | None = None
    for label, rows in sizes():
        _engine, url, _built = demo_database("sqlite", label, rows)
        _engine.dispose()
        port = _free_port()
        server = _start(url, port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                base = f"http://127.0.0.1:{port}/"
                _load_overview(browser, base)  # the server's first run: imports, price seeding
                # a first visit: a new browser context each time, nothing cached
                cold = statistics.median(_load_overview(browser, base)[1] for _ in range(3))
                # a return visit: one context, Streamlit's and plotly's scripts already cached
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                _load_overview(context, base)
                runs = [_load_overview(context, base) for _ in range(3)]
                kpis, warm = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                browser.close()
            figure(f"Overview in Chromium, first visit (empty cache), {label}", cold * 1000, "ms")
            figure(f"Overview in Chromium, return visit: KPIs shown, {label}", kpis * 1000, "ms")
            first_ms = first_ms or warm * 1000
            figure(
                f"Overview in Chromium, return visit: all drawn, {label}",
                warm * 1000,
                "ms",
                "10k",
                warm * 1000 / first_ms,
            )
            figure(f"app peak RSS, {label}", _peak_rss_mb(server.pid), "MB")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
