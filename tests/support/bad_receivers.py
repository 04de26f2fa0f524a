"""Receivers that misbehave at the socket level: garbage instead of HTTP, or an answer dripped a byte at a time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RawReceiver:
    url: str
    requests: list[float] = field(default_factory=list)  # when each connection was accepted


@contextmanager
def raw_receiver(answer: bytes, drip_seconds: float = 0.0) -> Iterator[RawReceiver]:
    """Accepts connections, reads the request, then writes ``answer`` (byte by byte when dripping)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    state = RawReceiver(url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if not drip_seconds:
                    conn.sendall(answer)
                    return
                for byte in answer:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(drip_seconds)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            state.requests.append(time.monotonic())
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        listener.close()
