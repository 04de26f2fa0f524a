"""A small OpenAI-compatible chat-completions server on 127.0.0.1, so no test reaches the internet.

It answers ``POST /chat/completions`` (and ``/v1/chat/completions``) with a fixed ``id`` and
``usage``, or, by ``mode``, with a 401, a 429, an answer slower than the client's timeout, or an
answer without ``usage``. It keeps every request it got, headers included, for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "unauthorized", "rate_limited", "slow", "no_usage")


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


@dataclass
class StubOpenAI:
    """Start with ``with StubOpenAI() as stub:``; ``stub.base_url`` ends in ``/v1``."""

    response_id: str | None = "chatcmpl-stub-0001"  # None: the answer has no id
    prompt_tokens: int = 1000
    completion_tokens: int = 500
    cached_tokens: int | None = None
    model: str | None = None  # what the answer names; default: the requested model
    mode: str = "ok"
    delay: float = 2.0
    reply: str = "2 + 2 is 4."
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "stub not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def completion(self, requested_model: str) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        body: dict[str, Any] = {
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or requested_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
        }
        if self.response_id is not None:
            body["id"] = self.response_id
        if self.mode != "no_usage":
            body["usage"] = usage
        return body

    def __enter__(self) -> StubOpenAI:
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
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                stub.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if stub.mode == "unauthorized":
                    self._send(401, {"error": {"message": "Invalid credentials in Authorization header"}})
                    return
                if stub.mode == "rate_limited":
                    self._send(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "7"})
                    return
                if stub.mode == "slow":
                    time.sleep(stub.delay)
                self._send(200, stub.completion(str(body.get("model", ""))))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-openai", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
