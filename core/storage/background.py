"""Daemon threads a server runs beside its requests, one per process and database (the budget loop, the
WAL checkpointer): started once, stopped by tests; a server simply exits."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine


class OncePerDatabase:
    """A named daemon thread running ``target(engine, stop_event, interval)`` at most once per database URL."""

    def __init__(self, name: str, target: Callable[[Engine, threading.Event, float], None]) -> None:
        self.name = name
        self.target = target
        self._lock = threading.Lock()
        self._started: dict[str, tuple[threading.Thread, threading.Event]] = {}

    def start(self, engine: Engine, interval: float, before: Callable[[], None] | None = None) -> threading.Thread:
        """The running thread for ``engine``'s database, or a new one (``before`` runs first, under the lock)."""
        key = str(engine.url)
        with self._lock:
            running = self._started.get(key)
            if running is not None and running[0].is_alive():
                return running[0]
            if before is not None:
                before()
            stop = threading.Event()
            thread = threading.Thread(target=self.target, args=(engine, stop, interval), name=self.name, daemon=True)
            thread.start()
            self._started[key] = (thread, stop)
            return thread

    def stop(self, engine: Engine, timeout: float) -> None:
        with self._lock:
            running = self._started.pop(str(engine.url), None)
        if running is not None:
            running[1].set()
            running[0].join(timeout)

    def stop_all(self, timeout: float) -> None:
        """Stop every database's thread (a test process, whose databases come and go between tests)."""
        with self._lock:
            running = list(self._started.values())
            self._started.clear()
        for _thread, stop in running:
            stop.set()
        for thread, _stop in running:
            thread.join(timeout)
