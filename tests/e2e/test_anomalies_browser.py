"""Anomalies end to end: the running dashboard's loop finds a spike recorded behind its back and delivers
one signed ``anomaly.detected`` within 10 s, and Chromium shows the red marker above the spike's bar, whose
hover names the key, the spend and the usual spend. Saves ``anomalies.png`` (``make screenshots``: docs/)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from budget_receiver import receiver
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, needs_chromium, streamlit_server

from core.anomalies import service
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.migrate import create_tables

SHOTS = ROOT / Path(os.environ.get("SPENDBOARD_SCREENSHOTS") or "test-artifacts/screenshots")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

pytestmark = [pytest.mark.browser, needs_chromium]


def history(url: str, spike: datetime) -> None:
    """Five weeks of ordinary traffic (users on two providers, a $40 job every day at the spike's hour) and
    batch-7's usual $2 at that hour; then $31.40 in that hour: only the user's hour is unusual."""

    def usd(amount: str, at: datetime, user: str, provider: str = "acme", model: str = "model-x") -> object:
        return make_call(provider, model, int(Decimal(amount) * 1_000_000), 0, user=user, timestamp=at)

    engine = make_engine(url)
    calls = []
    for day in range(36):
        for hour in (8, 11, 14, 17, 20):
            at = spike.replace(hour=hour, minute=20) - timedelta(days=day)
            calls.append(usd("0.90", at, "web-app", "acme", "model-x"))
            calls.append(usd("0.60", at, "support-bot", "other", "model-y"))
        # a nightly-style batch that is normal at 14:00 every day: the provider's hour stays usual
        calls.append(usd("40", spike.replace(minute=40) - timedelta(days=day), "etl", "acme", "model-x"))
    calls += [
        usd(a, spike - timedelta(weeks=5 - i, minutes=-10), "batch-7")
        for i, a in enumerate(["2", "1.9", "2.1", "1.9", "2.1"])
    ]
    calls.append(usd("31.40", spike + timedelta(minutes=5), "batch-7"))
    record_batch(engine, calls)  # type: ignore[arg-type]
    engine.dispose()


def test_the_server_sends_the_anomaly_and_the_chart_marks_it(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = f"sqlite:///{tmp_path / 'spendboard.db'}"
    engine = make_engine(url)
    create_tables(engine)
    spike = (datetime.now(UTC) - timedelta(days=3)).replace(hour=14, minute=0, second=0, microsecond=0)
    with receiver() as hook:
        hook.secret = SECRET
        service.add_alert(engine, service.validate_alert(hook.url, SECRET))  # before the calls: it hears of them
        engine.dispose()
        history(url, spike)  # recorded behind the server's back, three days late
        env = {
            "DATABASE_URL": url,
            "SPENDBOARD_ADMIN_PASSWORD": "browser-test-password",
            "SPENDBOARD_WEBHOOK_ALLOW_PRIVATE": "1",  # the test's receiver listens on 127.0.0.1
        }
        with streamlit_server(ROOT / "server.py", env, tmp_path / "server.log") as base:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(base)  # the first visit starts the app's loop
                started = time.monotonic()
                while not hook.delivered and time.monotonic() - started < 10:
                    time.sleep(0.2)
                assert len(hook.delivered) == 1, f"no event within 10 s: {hook.received}"
                (event,) = hook.delivered
                assert event.verified and event.payload["type"] == "anomaly.detected"
                assert event.payload["data"] == {
                    "scope": "user", "key": "batch-7", "hour": spike.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "spend": "31.40", "baseline": "2.00", "ratio": "15.70",
                }  # fmt: skip
                markers = page.locator(".spend-chart .sc-mark")
                deadline = time.monotonic() + 45  # the page's reads are cached for 30 s, as every figure is
                while True:
                    page.goto(base)
                    page.wait_for_selector(".spend-chart .sc-bar", timeout=60_000)
                    page.wait_for_timeout(1000)
                    if markers.count() or time.monotonic() > deadline:
                        break
                    page.wait_for_timeout(4000)
                assert markers.count() == 1
                chart = page.locator(".spend-chart").first
                chart.evaluate("e => e.scrollIntoView({block: 'center'})")  # clear of the sticky header
                page.wait_for_timeout(300)
                box = markers.first.bounding_box()
                assert box is not None and box["width"] >= 10 and box["height"] >= 10  # big enough to see
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_timeout(200)
                # the hover's label, drawn under the marker (its ::after box) while the pointer is on it
                text = markers.first.evaluate("e => getComputedStyle(e, '::after').content")
                assert "batch-7" in text and "$31.40" in text and "usually $2.00" in text
                SHOTS.mkdir(parents=True, exist_ok=True)
                chart.screenshot(path=str(SHOTS / "anomalies.png"))
                page.mouse.move(0, 0)
                assert markers.first.evaluate("e => getComputedStyle(e, '::after').content") == "none"
                assert page.get_by_test_id("stException").count() == 0
                browser.close()
        time.sleep(1)
        assert len(hook.delivered) == 1  # and only once
