"""Issue 19, point 15: `python -m core serve` cuts off slow and idle connections (slowloris)."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from streamlit_server import free_port

import routes.server_limits as limits


@pytest.fixture
def served(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The server exactly as `serve` configures it (its uvicorn.run arguments), in a thread."""
    from core.cli import keys
    from core.storage.engine import make_engine

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    monkeypatch.setattr(limits, "HEADER_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(limits, "BODY_TIMEOUT_SECONDS", 1.0)
    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    port = free_port()
    keys.serve(argparse.Namespace(host="127.0.0.1", port=port, workers=1), lambda: make_engine(db_url))
    captured.pop("workers")
    server = uvicorn.Server(uvicorn.Config(captured.pop("app"), **captured))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (what it sends meanwhile is read and dropped)."""
    sock.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def test_headers_that_trickle_in_are_cut_off(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.sendall(b"POST /api/v1/calls HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        assert closed_within(sock, 4.0)


def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        assert closed_within(sock, 4.0)


def test_a_body_that_stalls_is_answered_408(served: int, engine) -> None:  # type: ignore[no-untyped-def]
    from core.ingest.keys import create_key

    key = create_key(engine, "slow-sender").key
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.sendall(
            b"POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"
        )
        sock.settimeout(6.0)
        answer = b""
        while b"did not arrive" not in answer:  # the headers and the body may come in separate reads
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"did not arrive within 1 s" in answer
