"""Slow or idle connections are cut off (slowloris): headers, body and idle time are each bounded.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not a request whose
headers trickle in; ``GuardedH11Protocol`` closes a connection whose request headers are not
complete ``HEADER_TIMEOUT_SECONDS`` after it opened (or after its previous answer). The body has
its own whole deadline in ``routes.ingest`` (``BODY_TIMEOUT_SECONDS``). ``python -m core serve``
runs uvicorn with these; the dashboard's port is meant to sit behind a reverse proxy (README).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 60.0
IDLE_TIMEOUT_SECONDS = 5  # between requests on a kept-alive connection (uvicorn's timeout_keep_alive)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()
        super().data_received(data)
        if not self._between_requests():  # the headers are in: the request runs, the body has its own deadline
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
