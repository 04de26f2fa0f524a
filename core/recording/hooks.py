"""Where a higher package acts inside recording, without recording importing it.

Budgets mark the periods a batch touches after it commits (``after_commit``). A package
registers once, when it is imported; recording calls every registered hook in order.
A hook that fails after the commit never fails the caller: the calls are stored already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

AfterCommit = Callable[[Engine, Sequence[Any]], object]
InTransaction = Callable[[Connection, Sequence[Any], Sequence[int]], None]

_after_commit: list[AfterCommit] = []
_in_transaction: list[InTransaction] = []


def after_commit(hook: AfterCommit) -> AfterCommit:
    """Register ``hook(engine, calls)``, run after a batch of calls is committed."""
    if hook not in _after_commit:
        _after_commit.append(hook)
    return hook


def in_transaction(hook: InTransaction) -> InTransaction:
    """Register ``hook(conn, calls, ids)``, run inside the batch's transaction after its rows are written.

    An exception rolls the whole batch back: use it only for work that must commit with the calls.
    """
    if hook not in _in_transaction:
        _in_transaction.append(hook)
    return hook


def run_in_transaction(conn: Connection, calls: Sequence[Any], ids: Sequence[int]) -> None:
    for hook in _in_transaction:
        hook(conn, calls, ids)


def run_after_commit(engine: Engine, calls: Sequence[Any]) -> None:
    for hook in _after_commit:
        try:
            hook(engine, calls)
        except Exception:  # noqa: BLE001 - the calls are committed; a hook never fails the caller
            log.exception("hook %r failed after recording %d call(s)", hook, len(calls))
