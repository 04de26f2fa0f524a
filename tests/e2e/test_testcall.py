"""The test call: one real HTTP chat completion to a local stub, recorded once, failures record nothing."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, isolated_env, needs_chromium, streamlit_server
from stub_openai import StubOpenAI

import core.config
from core.recording.calls import CallError
from core.recording.testcall import TestCallError, make_test_call
from core.storage.tables import UsageRecord
from ui.signin import SIGNED_IN_KEY

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
PASSWORD = "correct horse battery staple"
MODEL = "openai/gpt-oss-120b:groq"


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch):
    with StubOpenAI(delay=1.5) as server:
        monkeypatch.setenv("HF_BASE_URL", server.base_url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


# core.recording.testcall


def test_a_test_call_is_recorded_once_at_the_seed_price(engine: Engine, stub: StubOpenAI) -> None:
    result = make_test_call(engine)
    assert (result.provider, result.model, result.request_id) == ("huggingface", MODEL, "chatcmpl-stub-0001")
    assert (result.input_tokens, result.output_tokens, result.duplicate) == (1000, 500, False)
    assert result.stored_cost_total == Decimal("0.0025") and result.stored_matched_by == "exact"
    b = result.breakdown
    assert (b.input_token_cost, b.output_token_cost) == (Decimal("0.000001"), Decimal("0.000003"))
    assert (b.cost_input, b.cost_output, b.cost_total) == (Decimal("0.001"), Decimal("0.0015"), Decimal("0.0025"))
    assert result.reply == "2 + 2 is 4."
    [sent] = stub.requests
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.body["model"] == MODEL and sent.body["messages"][0]["role"] == "user"

    again = make_test_call(engine)
    assert again.duplicate and again.log_id == result.log_id
    assert count(engine) == 1


def test_token_and_base_url_are_read_from_dot_env_and_never_logged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hf_from_dotenv_123"
    with StubOpenAI(response_id="from-dotenv") as server:
        (tmp_path / ".env").write_text(f"HF_TOKEN={secret}\nHF_BASE_URL={server.base_url}\n")
        for name in ("HF_TOKEN", "HF_BASE_URL"):  # unset now, and unset again after the test however .env set them
            monkeypatch.setenv(name, "placeholder")
            monkeypatch.delenv(name)
        monkeypatch.setattr(core.config, "_dotenv_loaded", False)  # as after a restart
        with caplog.at_level(logging.DEBUG):
            result = make_test_call(engine)
    assert result.request_id == "from-dotenv" and result.stored_cost_total == Decimal("0.0025")
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text and secret not in repr(result)


def test_cached_tokens_reported_by_the_provider_are_priced_as_cached(engine: Engine, stub: StubOpenAI) -> None:
    stub.cached_tokens = 400
    result = make_test_call(engine)
    assert result.cached_input_tokens == 400
    assert result.stored_cost_total == result.breakdown.cost_total  # stored and recomputed agree


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("unauthorized", "the provider refused the token (HTTP 401): check HF_TOKEN"),
        ("rate_limited", "rate limited by the provider (HTTP 429) (retry after 7 s)"),
        ("slow", "within 0.3 s"),
        ("no_usage", "usage: the response has no usage block"),
    ],
)
def test_a_failed_call_records_nothing_and_says_why_without_the_token(
    engine: Engine, stub: StubOpenAI, mode: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    stub.mode = mode
    with caplog.at_level(logging.DEBUG), pytest.raises(TestCallError) as caught:
        make_test_call(engine, timeout=0.3)
    assert message in str(caught.value) and "nothing recorded" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text
    assert caught.value.__cause__ is None  # no chained exception carries the request along
    assert count(engine) == 0


def test_no_token_is_an_error_before_anything_is_sent(engine: Engine, stub: StubOpenAI, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(TestCallError, match="HF_TOKEN is not set"):
        make_test_call(engine)
    assert stub.requests == [] and count(engine) == 0


def test_a_refused_connection_is_a_plain_message(engine: Engine) -> None:
    with StubOpenAI() as gone:
        url = gone.base_url
    with pytest.raises(TestCallError, match="could not connect to http://127.0.0.1:.*nothing recorded"):
        make_test_call(engine, token=TOKEN, base_url=url, timeout=2)
    assert count(engine) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "   "}, "prompt: empty"),
        ({"prompt": "x" * 2001}, "prompt: 2,001 characters"),
        ({"model": ""}, "model"),
        ({"base_url": "ftp://example"}, "HF_BASE_URL: 'ftp://example' is not an http(s) URL"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    engine: Engine, stub: StubOpenAI, kwargs: dict, message: str
) -> None:
    with pytest.raises(CallError, match=re.escape(message)):
        make_test_call(engine, **kwargs)
    assert stub.requests == [] and count(engine) == 0


# python -m core test-call


def run_cli(db_url: str, *args: str, base_url: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = isolated_env({"DATABASE_URL": db_url, "HF_BASE_URL": base_url})
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "core", "test-call", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_records_one_call_and_a_repeat_records_nothing_new(engine: Engine, db_url: str, stub) -> None:
    done = run_cli(db_url, "--json", base_url=stub.base_url)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["provider"], out["model"], out["matched_by"], out["duplicate"]) == (
        "huggingface",
        MODEL,
        "exact",
        False,
    )
    assert (out["input_tokens"], out["output_tokens"], out["cost_total"]) == (1000, 500, "0.0025")
    assert (out["cost_input"], out["cost_output"], out["request_id"]) == ("0.001", "0.0015", "chatcmpl-stub-0001")
    again = run_cli(db_url, base_url=stub.base_url)
    assert again.returncode == 0 and f"already recorded as log #{out['id']}; nothing changed" in again.stdout
    assert count(engine) == 1


@pytest.mark.parametrize(
    ("mode", "message"),
    [("unauthorized", "HTTP 401"), ("rate_limited", "HTTP 429"), ("slow", "within 1 s"), ("no_usage", "no usage")],
)
def test_cli_provider_failures_exit_1_with_one_line(
    engine: Engine, db_url: str, stub: StubOpenAI, mode: str, message: str
) -> None:
    stub.mode = mode
    done = run_cli(db_url, "--timeout", "1", base_url=stub.base_url)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ") and message in done.stderr and done.stderr.count("\n") == 1
    assert TOKEN not in done.stderr
    assert count(engine) == 0


def test_cli_without_a_token_and_with_bad_input(engine: Engine, db_url: str, stub: StubOpenAI) -> None:
    no_token = run_cli(db_url, base_url=stub.base_url, token=None)
    assert no_token.returncode == 1 and "HF_TOKEN is not set" in no_token.stderr
    empty_prompt = run_cli(db_url, "--prompt", " ", base_url=stub.base_url)
    assert empty_prompt.returncode == 2 and "prompt: empty" in empty_prompt.stderr
    assert stub.requests == [] and count(engine) == 0


# The dashboard panel, drawn alone (the Calculator page itself belongs to the dashboard work).


def panel_app() -> None:
    from core.storage.engine import make_engine
    from ui.test_call_panel import render

    render(make_engine())


def open_panel(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", db_url)
    at = AppTest.from_function(panel_app, default_timeout=30)
    at.session_state[SIGNED_IN_KEY] = time.time() + 3600  # a test call needs the admin sign-in
    at.run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [c.value for c in at.code]
    parts += [e.value for e in at.error] + [s.value for s in at.success] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_the_panel_makes_a_call_and_shows_it_as_stored(engine: Engine, db_url: str, stub, monkeypatch) -> None:
    at = open_panel(db_url, monkeypatch)
    assert at.expander[0].label == "Make a test call"
    assert at.selectbox[0].value == "huggingface" and at.text_input[0].value == MODEL
    at.button[0].click().run()
    assert not at.exception and not at.error
    text = page_text(at)
    assert "Recorded as log #1" in text
    assert [m.value for m in at.metric][:2] == ["1,000", "500"]
    assert "input $1.00 / 1M tokens, output $3.00 / 1M tokens" in text
    assert "cost_input = 1000 * 0.000001 = $0.001" in text
    assert "cost_output = 500 * 0.000003 = $0.0015" in text
    assert "cost_total = $0.0025" in text
    assert "log #1" in text and TOKEN not in text
    at.button[0].click().run()
    assert "already recorded as log #1; nothing new" in page_text(at)
    assert count(engine) == 1


@pytest.mark.parametrize(
    ("mode", "message"),
    [("unauthorized", "HTTP 401"), ("rate_limited", "HTTP 429"), ("no_usage", "no usage block")],
)
def test_the_panel_shows_provider_errors_and_records_nothing(
    engine: Engine, db_url: str, stub: StubOpenAI, monkeypatch, mode: str, message: str
) -> None:
    stub.mode = mode
    at = open_panel(db_url, monkeypatch)
    at.button[0].click().run()
    assert not at.exception
    [error] = at.error
    assert message in error.value and TOKEN not in page_text(at)
    assert not at.metric and count(engine) == 0


def test_the_panel_says_when_the_token_is_missing(engine: Engine, db_url: str, stub, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    at = open_panel(db_url, monkeypatch)
    at.button[0].click().run()
    assert "HF_TOKEN is not set" in at.error[0].value
    assert stub.requests == [] and count(engine) == 0


NAV_APP = """
import streamlit as st
st.navigation([st.Page("calculator.py", title="Calculator"), st.Page("logs.py", title="Usage logs")]).run()
"""
CALCULATOR = """
from core.storage.engine import make_engine
from ui.test_call_panel import render
render(make_engine(), logs_page="logs.py")
"""


def test_in_an_app_with_a_logs_page_the_panel_links_to_the_stored_log(
    engine: Engine, db_url: str, stub, monkeypatch, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(NAV_APP)
    (tmp_path / "calculator.py").write_text(CALCULATOR)
    (tmp_path / "logs.py").write_text("import streamlit as st\nst.write(dict(st.query_params))\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    at = AppTest.from_file(str(tmp_path / "app.py"), default_timeout=30)
    at.session_state[SIGNED_IN_KEY] = time.time() + 3600
    at.run()
    at.button[0].click().run()
    assert not at.exception
    [link] = at.get("page_link")
    assert link.proto.label == "Open log #1 in Usage logs" and link.proto.query_string == "log_id=1"
    assert link.proto.page == "logs"


# The panel in a real browser, served by `streamlit run` (Debian's Chromium through Playwright).


@pytest.fixture
def served_panel(db_url: str, stub: StubOpenAI, tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "panel_app.py"
    script.write_text(
        "from core.storage.engine import make_engine\nfrom ui.test_call_panel import render\nrender(make_engine())\n"
    )
    env = {
        "DATABASE_URL": db_url,
        "HF_BASE_URL": stub.base_url,
        "HF_TOKEN": TOKEN,
        "SPENDBOARD_ADMIN_PASSWORD": PASSWORD,
    }
    with streamlit_server(script, env, tmp_path / "streamlit.log") as base:
        yield base + "/"


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_the_panel_in_a_browser_records_one_call(engine: Engine, served_panel: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(served_panel)
            page.get_by_text("Make a test call").first.click()
            page.get_by_label("Admin password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="Make a test call").click(timeout=30_000)
            expect(page.get_by_text("Recorded as log #1")).to_be_visible(timeout=60_000)  # a loaded CI machine
            expect(page.get_by_text("cost_input = 1000 * 0.000001 = $0.001")).to_be_visible()
            expect(page.get_by_text("$0.0025").first).to_be_visible()
            assert TOKEN not in page.content()
        finally:
            browser.close()
    assert count(engine) == 1
