"""A local stand-in for OpenAI's and Anthropic's Admin report endpoints, so no test reaches the internet.

It serves, in the documented shapes, the four reports reconciliation reads:

- OpenAI ``GET /v1/organization/costs`` and ``/v1/organization/usage/completions``
  (``start_time``/``end_time`` in epoch seconds, ``Authorization: Bearer KEY``);
- Anthropic ``GET /v1/organizations/cost_report`` and ``/v1/organizations/usage_report/messages``
  (``starting_at``/``ending_at`` in RFC 3339, ``x-api-key`` and ``anthropic-version: 2023-06-01``).

Each day of the asked range is one bucket holding the results given for that day (none: an empty
bucket, as the providers answer). Pages hold ``min(limit, page_size)`` buckets, with ``has_more``
and an opaque ``next_page`` that must come back as ``page``. Amounts given as ``Decimal`` are
written as JSON numbers from their text, never through a float. By ``mode`` it refuses the key,
never answers, or answers a body of the wrong shape, not JSON, or an error status. It keeps every
request it got (path and query) and every page it served.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODES = ("ok", "hang", "wrong_shape", "not_json", "error")
OPENAI_PATHS = {"/v1/organization/costs": "cost", "/v1/organization/usage/completions": "usage"}
ANTHROPIC_PATHS = {"/v1/organizations/cost_report": "cost", "/v1/organizations/usage_report/messages": "usage"}
ANTHROPIC_VERSION = "2023-06-01"
WRONG_SHAPE = '{"data": [{"results": "none"}], "has_more": false, "next_page": null}'

Results = dict[date, list[dict[str, Any]]]


def openai_cost(line_item: str | None, value: str, currency: str = "usd") -> dict[str, Any]:
    """A costs result; ``value`` is written as a JSON number with exactly these digits."""
    return {
        "object": "organization.costs.result",
        "amount": {"value": Decimal(value), "currency": currency},
        "line_item": line_item,
        "project_id": None,
    }


def openai_usage(
    model: str, input_tokens: int, output_tokens: int, cached: int = 0, requests: int = 1
) -> dict[str, Any]:
    """A completions usage result (``input_tokens`` includes the cached ones, as OpenAI counts)."""
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cached_tokens": cached,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": requests,
        "project_id": None,
        "user_id": None,
        "api_key_id": None,
        "model": model,
        "batch": None,
    }


def anthropic_cost(
    model: str | None,
    token_type: str | None,
    cents: str,
    *,
    description: str | None = None,
    cost_type: str = "tokens",
    context_window: str | None = "0-200k",
) -> dict[str, Any]:
    """A cost report result, ``amount`` a decimal string in cents as Anthropic gives it."""
    return {
        "currency": "USD",
        "amount": cents,
        "workspace_id": None,
        "description": description or f"{model} usage - {token_type}",
        "cost_type": cost_type,
        "context_window": context_window if model else None,
        "model": model,
        "service_tier": "standard" if model else None,
        "token_type": token_type,
    }


def anthropic_usage(
    model: str,
    uncached: int,
    output: int,
    *,
    cache_5m: int = 0,
    cache_1h: int = 0,
    cache_read: int = 0,
) -> dict[str, Any]:
    """A messages usage result (``uncached_input_tokens`` leaves out cache reads and writes)."""
    return {
        "uncached_input_tokens": uncached,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_5m, "ephemeral_1h_input_tokens": cache_1h},
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": None,
        "workspace_id": None,
        "model": model,
        "service_tier": None,
        "context_window": None,
    }


def dumps_exact(body: object) -> str:
    """JSON text with each ``Decimal`` written as a number from its own digits."""

    def mark(value: object) -> str:
        if isinstance(value, Decimal):
            return f"\x00{value}\x00"
        raise TypeError(f"{type(value).__name__} is not JSON")

    return re.sub(r'"\\u0000(.*?)\\u0000"', r"\1", json.dumps(body, default=mark))


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Served:
    path: str
    body: str  # the page exactly as sent


@dataclass
class AdminApiStub:
    """Start with ``with AdminApiStub(...) as stub:``; ``stub.openai_url`` / ``stub.anthropic_url`` are the bases."""

    openai_costs: Results = field(default_factory=dict)
    openai_usage: Results = field(default_factory=dict)
    anthropic_costs: Results = field(default_factory=dict)
    anthropic_usage: Results = field(default_factory=dict)
    openai_key: str = "sk-admin-stub-openai"
    anthropic_key: str = "sk-ant-admin01-stub"
    page_size: int = 2  # buckets per page at most, whatever limit asks: paging is always exercised
    mode: str = "ok"
    mode_after: int = 0  # report requests answered normally before ``mode`` applies
    status: int = 500  # the status of mode "error"
    refuse_status: int = 401  # the status of a wrong key
    wrong_body: str = WRONG_SHAPE
    requests: list[Recorded] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cursors: dict[str, int] = {}
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where it listens (still told after ``stop``, for messages that name it)."""
        assert self._url is not None, "stub not started"
        return self._url

    @property
    def openai_url(self) -> str:
        """OpenAI's base URL includes ``/v1``, as ``https://api.openai.com/v1`` does."""
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def start(self) -> AdminApiStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                stub._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._url = f"http://127.0.0.1:{self._server.server_port}"
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.02), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # a hanging answer gives up
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AdminApiStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the tests read ---------------------------------------------------------------------

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def pages(self) -> list[str]:
        """Every page served, in order: what a person saves for ``reconcile import``."""
        return [s.body for s in self.served]

    # -- answering -------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Recorded(parts.path, query, headers))
            number = len(self.requests)
        if parts.path in OPENAI_PATHS:
            provider, kind = "openai", OPENAI_PATHS[parts.path]
        elif parts.path in ANTHROPIC_PATHS:
            provider, kind = "anthropic", ANTHROPIC_PATHS[parts.path]
        else:
            self._send(handler, 404, _error(f"no route {parts.path}"))
            return
        special = self.mode if number > self.mode_after else "ok"
        if special == "hang":  # the connection is accepted; no answer ever comes
            self._stop.wait(30)
            return
        refused = self._auth_problem(provider, headers)
        if refused is not None:
            self._send(handler, *refused)
            return
        if special == "wrong_shape":
            self._send(handler, 200, self.wrong_body)
            return
        if special == "not_json":
            self._send(handler, 200, "<html><body>Bad gateway</body></html>", "text/html")
            return
        if special == "error":
            self._send(handler, self.status, _error("the stub was told to fail"))
            return
        try:
            days = self._days(provider, query)
            offset = self._offset(query)
            limit = int(_one(query, "limit") or 7)
        except ValueError as exc:
            self._send(handler, 400, _error(str(exc)))
            return
        size = max(1, min(limit, self.page_size))
        shown = days[offset : offset + size]
        more = offset + size < len(days)
        cursor = None
        if more:
            cursor = f"page_{secrets.token_hex(6)}"
            with self._lock:
                self._cursors[cursor] = offset + size
        data = self._results(provider, kind)
        if provider == "openai":
            body: dict[str, Any] = {
                "object": "page",
                "data": [_openai_bucket(day, data.get(day, [])) for day in shown],
                "has_more": more,
                "next_page": cursor,
            }
        else:
            body = {
                "data": [_anthropic_bucket(day, data.get(day, [])) for day in shown],
                "has_more": more,
                "next_page": cursor,
            }
        text = dumps_exact(body)
        with self._lock:
            self.served.append(Served(parts.path, text))
        self._send(handler, 200, text)

    def _auth_problem(self, provider: str, headers: dict[str, str]) -> tuple[int, str] | None:
        if provider == "openai":
            if headers.get("authorization") != f"Bearer {self.openai_key}":
                return self.refuse_status, _error("Incorrect API key provided")
            return None
        if headers.get("x-api-key") != self.anthropic_key:
            return self.refuse_status, _error("invalid x-api-key")
        if headers.get("anthropic-version") != ANTHROPIC_VERSION:
            return 400, _error("anthropic-version header is required")
        return None

    def _results(self, provider: str, kind: str) -> Results:
        if provider == "openai":
            return self.openai_costs if kind == "cost" else self.openai_usage
        return self.anthropic_costs if kind == "cost" else self.anthropic_usage

    def _days(self, provider: str, query: dict[str, list[str]]) -> list[date]:
        if _one(query, "bucket_width") != "1d":
            raise ValueError("bucket_width must be 1d")
        if provider == "openai":
            start = datetime.fromtimestamp(int(_one(query, "start_time") or "x"), UTC)
            end_text = _one(query, "end_time")
            end = datetime.fromtimestamp(int(end_text), UTC) if end_text else start + timedelta(days=7)
        else:
            start = _rfc3339(_one(query, "starting_at"))
            end_text = _one(query, "ending_at")
            end = _rfc3339(end_text) if end_text else start + timedelta(days=7)
        first, last = start.date(), end.date() if end.time() == datetime.min.time() else end.date() + timedelta(1)
        return [first + timedelta(days=n) for n in range((last - first).days)]

    def _offset(self, query: dict[str, list[str]]) -> int:
        cursor = _one(query, "page")
        if cursor is None:
            return 0
        with self._lock:
            if cursor not in self._cursors:
                raise ValueError(f"page {cursor!r} is not a cursor this server gave")
            return self._cursors[cursor]

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: str, kind: str = "application/json") -> None:
        raw = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"{key} given {len(values)} times")
    return values[0]


def _rfc3339(value: str | None) -> datetime:
    if not value:
        raise ValueError("starting_at is required")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _error(message: str) -> str:
    return json.dumps({"error": {"type": "error", "message": message}})


def _openai_bucket(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp())
    return {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results}


def _anthropic_bucket(day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "starting_at": f"{day.isoformat()}T00:00:00Z",
        "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
        "results": results,
    }
