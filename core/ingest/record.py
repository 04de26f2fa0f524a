"""What every ingestion route does once its payload is parsed: record the calls, keep the refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine

from core.ingest.rejections import Refusal, keep_refusals
from core.usage import Call, call_from_mapping, record_batch


def to_call(mapping: Mapping[str, object], default_project: str | None) -> Call:
    """A call from an import-style mapping; the key's project applies where the call names none."""
    return call_from_mapping(mapping, default_project=default_project)


@dataclass
class Parsed:
    """A payload's items: calls to record (with their index in the payload) and refused items."""

    calls: list[tuple[int, Call]] = field(default_factory=list)
    refused: list[tuple[int, Refusal]] = field(default_factory=list)
    ignored: int = 0  # items that are not calls (non-GenAI spans, agent spans summing their children)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    refused: list[tuple[int, str]]


_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


@contextmanager
def _one_writer(engine: Engine) -> Iterator[None]:
    """SQLite has one writer: requests of this process queue on a lock instead of in SQLite's busy handler,
    whose sleeps grow with each retry (a long tail of latency under concurrent senders)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _writer_locks_guard:
        lock = _writer_locks.setdefault(str(engine.url), threading.Lock())
    with lock:
        yield


def record_parsed(engine: Engine, route: str, key_name: str | None, parsed: Parsed) -> IngestResult:
    """Record the calls in one transaction (acknowledged only once committed), then keep the refusals."""
    with _one_writer(engine):
        outcome = record_batch(engine, [call for _, call in parsed.calls]) if parsed.calls else None
        if parsed.refused:
            keep_refusals(engine, route, key_name, (refusal for _, refusal in parsed.refused))
    return IngestResult(
        outcome.recorded if outcome else 0,
        outcome.duplicates if outcome else 0,
        [(index, refusal.reason) for index, refusal in parsed.refused],
    )
