"""Record a batch so that one bad call is that call's refusal, never the whole batch's failure.

The batch is written whole when it can be (one transaction, the fast path). When the write
fails because of what a call holds (priced above the limit of one call, a stored sum that
would overflow, a value the database refuses) the batch is split in halves and each half
tried again, down to the calls that fail alone: those are refused with the reason, every
other call is recorded. A database that is down or locked is not a call's fault: raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from core.pricing.formula import price_call
from core.pricing.lookup import price_book
from core.pricing.rates import PricingError
from core.recording.calls import BatchResult, Call, CallError, _Pricer, record_batch
from core.storage.engine import DatabaseBusyError, is_lock_error

ITEM_ERRORS: tuple[type[Exception], ...] = (CallError, DataError, IntegrityError, OverflowError, ValueError, TypeError)


@dataclass
class Outcome:
    """Calls recorded, duplicates skipped, stored row ids, and the refused calls' positions with why."""

    recorded: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        self.recorded += result.recorded
        self.duplicates += result.duplicates
        self.ids.extend(result.ids)


def reason_of(exc: BaseException) -> str:
    """One line: a call error's own message, or the database's reason for a value it refused."""
    if isinstance(exc, CallError):
        return str(exc)
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).split("\n")[0].strip()
    return f"the call could not be stored ({type(orig or exc).__name__}: {text})"[:500]


def _is_item_error(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseBusyError) or is_lock_error(exc):
        return False
    if isinstance(exc, StatementError) and not isinstance(exc, (DataError, IntegrityError)):
        return isinstance(exc.orig, (OverflowError, ValueError, TypeError))  # a value a bind processor refused
    return isinstance(exc, ITEM_ERRORS)


def record_refusing(engine: Engine, calls: Sequence[Call], offset: int = 0) -> Outcome:
    """Record ``calls``; positions in ``refused`` are ``offset`` + the index in ``calls``."""
    outcome = Outcome()
    pending: list[tuple[int, Sequence[Call]]] = [(offset, calls)]
    while pending:
        start, part = pending.pop()
        if not part:
            continue
        try:
            outcome.add(record_batch(engine, part))
        except Exception as exc:
            if not _is_item_error(exc):
                raise
            if len(part) == 1:
                outcome.refused.append((start, reason_of(exc)))
                continue
            middle = len(part) // 2
            pending.append((start + middle, part[middle:]))  # popped last: the first half goes first
            pending.append((start, part[:middle]))
    outcome.refused.sort()
    return outcome


def price_refusals(engine: Engine, calls: Sequence[Call]) -> list[tuple[int, str]]:
    """The calls that could not be priced (past the limit of one call), without writing: a check's view."""
    refused: list[tuple[int, str]] = []
    with engine.connect() as conn:
        pricer = _Pricer(price_book(engine).index(conn))
    for position, call in enumerate(calls):
        match = pricer.match(call.provider, call.model, call.timestamp, call.timestamp.timestamp(), call.service_tier)
        try:
            price_call(match.price, call.usage)
        except PricingError as exc:
            refused.append((position, str(exc)))
    return refused
