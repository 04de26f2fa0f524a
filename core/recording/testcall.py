"""One real chat completion, recorded through the tracking path, to check prices end to end.

This closes the seed's procedure (set prices, restart, make a HuggingFace call, read its cost
in the logs). The token comes from ``HF_TOKEN`` and is sent only in the Authorization header:
it is never put in a message, a log line or an exception, and a failed call records nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import requests
from sqlalchemy import Engine

from core.config import load_environment
from core.pricing.formula import CostBreakdown
from core.pricing.rates import PricingError
from core.pricing.validation import validate_call
from core.recording.audit import verify_call
from core.recording.calls import CallError
from core.recording.track import TrackingError, track_completion

DEFAULT_PROVIDER = "huggingface"
DEFAULT_MODEL = "openai/gpt-oss-120b:groq"
DEFAULT_BASE_URL = "https://router.huggingface.co/v1"
DEFAULT_PROMPT = "Reply with one short sentence: what is 2 + 2?"
DEFAULT_TIMEOUT = 60.0
MAX_PROMPT_CHARS = 2000
MAX_REPLY_TOKENS = 256


class TestCallError(RuntimeError):
    """The provider call failed (no token, refused, rate limited, timed out, unreachable, no usage)."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True)
class TestCallResult:
    """The call as the usage log stored it, with the price that produced its cost."""

    __test__ = False

    log_id: int
    request_id: str | None
    duplicate: bool
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    stored_cost_total: Decimal
    stored_matched_by: str
    breakdown: CostBreakdown
    reply: str
    elapsed_seconds: float


def _setting(name: str) -> str | None:
    import os

    load_environment()
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def token_configured() -> bool:
    """Whether ``HF_TOKEN`` is set, so a page can say so without ever holding the value."""
    return _setting("HF_TOKEN") is not None


def configured_base_url() -> str:
    """``HF_BASE_URL``, or the HuggingFace router's OpenAI-compatible endpoint."""
    return (_setting("HF_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _error_detail(response: requests.Response) -> str:
    """The provider's own error message, short; the body is never trusted to be JSON."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or body)[:200]


def _post(url: str, token: str, payload: dict, timeout: float) -> dict:
    try:
        response = requests.post(
            url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        raise TestCallError(f"no answer from {url} within {timeout:g} s; nothing recorded") from None
    except requests.ConnectionError:
        raise TestCallError(
            f"could not connect to {url} (network down or wrong HF_BASE_URL?); nothing recorded"
        ) from None
    except requests.RequestException as exc:
        raise TestCallError(f"request to {url} failed ({type(exc).__name__}); nothing recorded") from None
    status = response.status_code
    if status in (401, 403):
        raise TestCallError(
            f"the provider refused the token (HTTP {status}): check HF_TOKEN and its permissions; nothing recorded"
        )
    if status == 429:
        wait = response.headers.get("Retry-After")
        hint = f" (retry after {wait} s)" if wait else ""
        raise TestCallError(f"rate limited by the provider (HTTP 429){hint}: wait and try again; nothing recorded")
    if not 200 <= status < 300:
        detail = _scrub(_error_detail(response), token)
        raise TestCallError(f"the provider answered HTTP {status}: {detail}; nothing recorded")
    try:
        body = response.json()
    except ValueError:
        raise TestCallError(f"the answer from {url} is not JSON; nothing recorded") from None
    if not isinstance(body, dict):
        raise TestCallError(f"the answer from {url} is not a chat completion; nothing recorded")
    return body


def _reply_text(body: dict) -> str:
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content.strip() if isinstance(content, str) else ""


def make_test_call(
    engine: Engine,
    provider: str = DEFAULT_PROVIDER,
    model: str = DEFAULT_MODEL,
    prompt: str = DEFAULT_PROMPT,
    token: str | None = None,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    user: str | None = "test-call",
) -> TestCallResult:
    """Send one small chat completion, record it, and return the stored call.

    Bad input (provider, model, prompt, base URL) raises :class:`CallError` before anything is
    sent; a provider failure raises :class:`TestCallError`. Neither records anything.
    """
    try:
        provider, model, *_ = validate_call(provider, model, 0, 0)
    except PricingError as exc:
        raise CallError(str(exc)) from None
    if not isinstance(prompt, str) or not prompt.strip():
        raise CallError("prompt: empty; write a short question to send")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise CallError(f"prompt: {len(prompt):,} characters is more than the {MAX_PROMPT_CHARS:,} a test call sends")
    url_base = base_url.rstrip("/") if base_url else configured_base_url()
    if not url_base.startswith(("http://", "https://")):
        raise CallError(f"HF_BASE_URL: {url_base!r} is not an http(s) URL (expected e.g. {DEFAULT_BASE_URL})")
    secret = token or _setting("HF_TOKEN")
    if not secret:
        raise TestCallError(
            "HF_TOKEN is not set: put a HuggingFace access token in .env or the environment "
            "(huggingface.co/settings/tokens); nothing recorded"
        )
    url = f"{url_base}/chat/completions"
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": prompt.strip()}],
        "max_tokens": MAX_REPLY_TOKENS,
        "stream": False,
    }
    started = time.perf_counter()
    body = _post(url, secret, payload, timeout)
    elapsed = time.perf_counter() - started
    try:
        tracked = track_completion(engine, body, provider, model=model, user=user)
    except TrackingError as exc:
        raise TestCallError(f"the provider's answer cannot be billed: {_scrub(str(exc), secret)}") from None
    stored = verify_call(engine, log_id=tracked.recorded.id)
    if stored is None:  # the row was there a moment ago; only a concurrent delete gets here
        raise TestCallError(f"log #{tracked.recorded.id} vanished right after it was recorded")
    return TestCallResult(
        log_id=stored.id,
        request_id=stored.request_id,
        duplicate=tracked.recorded.duplicate,
        provider=stored.provider,
        model=stored.model,
        input_tokens=stored.input_tokens,
        output_tokens=stored.output_tokens,
        cached_input_tokens=stored.cached_input_tokens,
        stored_cost_total=stored.stored_cost_total,
        stored_matched_by=stored.stored_matched_by,
        breakdown=stored.at_its_time,
        reply=_reply_text(body)[:2000],
        elapsed_seconds=elapsed,
    )
