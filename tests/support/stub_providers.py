"""A small Anthropic Messages and OpenAI Responses server on 127.0.0.1, so no test reaches the internet.

It answers ``POST /v1/messages`` with an Anthropic message and ``POST /v1/responses`` with an OpenAI
response, each with the ``usage`` block it is given (as the provider would send it) and a fixed id,
or, by ``mode``, with a 401, a 429, or an answer without ``usage``. It keeps every request it got.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stub_openai import Received

MODES = ("ok", "unauthorized", "rate_limited", "no_usage")

# As Anthropic returns it for a prompt read from the cache with a fresh part written to it.
ANTHROPIC_USAGE: dict[str, Any] = {
    "input_tokens": 3,
    "cache_creation_input_tokens": 418,
    "cache_read_input_tokens": 1111,
    "cache_creation": {"ephemeral_5m_input_tokens": 18, "ephemeral_1h_input_tokens": 400},
    "output_tokens": 50,
    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
    "service_tier": "standard",
}
# As OpenAI returns it for a reasoning model with a cached prompt.
RESPONSES_USAGE: dict[str, Any] = {
    "input_tokens": 10000,
    "input_tokens_details": {"cached_tokens": 8000, "cache_write_tokens": 0},
    "output_tokens": 2000,
    "output_tokens_details": {"reasoning_tokens": 1500},
    "total_tokens": 12000,
}


@dataclass
class StubProviders:
    """Start with ``with StubProviders() as stub:``; ``stub.anthropic_url`` / ``stub.openai_url`` for the clients."""

    message_id: str = "msg_01HCDu5LRGeP2o7s2xGmxyx8"
    response_id: str = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    anthropic_usage: dict[str, Any] = field(default_factory=lambda: dict(ANTHROPIC_USAGE))
    responses_usage: dict[str, Any] = field(default_factory=lambda: dict(RESPONSES_USAGE))
    answered_model: str | None = None  # what the answer names; default: the requested model
    service_tier: str = "default"  # OpenAI's response-level tier
    mode: str = "ok"
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def anthropic_url(self) -> str:
        """The Anthropic client adds ``/v1/messages`` itself."""
        assert self._server is not None, "stub not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.anthropic_url}/v1"

    def message(self, requested_model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.answered_model or requested_model,
            "content": [{"type": "text", "text": "2 + 2 is 4."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        }
        if self.mode != "no_usage":
            body["usage"] = self.anthropic_usage
        return body

    def response(self, requested_model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "model": self.answered_model or requested_model,
            "output": [
                {
                    "type": "message",
                    "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e6",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "2 + 2 is 4.", "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "service_tier": self.service_tier,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "usage": self.responses_usage if self.mode != "no_usage" else None,
        }
        return body

    def __enter__(self) -> StubProviders:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return None

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                stub.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                route = self.path.split("?")[0].rstrip("/")
                anthropic = route == "/v1/messages"
                if not anthropic and route != "/v1/responses":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if stub.mode == "unauthorized":
                    if anthropic:
                        error = {"type": "authentication_error", "message": "invalid x-api-key"}
                        self._send(401, {"type": "error", "error": error})
                    else:
                        self._send(401, {"error": {"message": "Incorrect API key provided"}})
                    return
                if stub.mode == "rate_limited":
                    self._send(429, {"type": "error", "error": {"message": "Rate limit reached"}}, {"Retry-After": "7"})
                    return
                requested = str(body.get("model", ""))
                self._send(200, stub.message(requested) if anthropic else stub.response(requested))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-providers", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
