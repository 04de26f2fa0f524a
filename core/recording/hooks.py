"""Where a higher package acts inside recording, without recording importing it.

Budgets mark the periods a batch touches after it commits (``after_commit``); enforced budgets
update their counters inside the batch's transaction (``in_transaction``) and check a tracked
request before it is sent (``before_send``). A package registers once, when it is imported;
recording calls every registered hook in order.
A hook that fails after the commit never fails the caller: the calls are stored already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

AfterCommit = Callable[[Engine, Sequence[Any]], object]
InTransaction = Callable[[Connection, Sequence[Any], Sequence[int]], None]

_after_commit: list[AfterCommit] = []
_in_transaction: list[InTransaction] = []


@dataclass(frozen=True)
class Outgoing:
    """A request ``track(enforce=True)`` is about to send: who it is for and its keyword arguments."""

    provider: str
    model: str | None
    user: str | None
    project: str | None
    kwargs: Mapping[str, Any]
    stream: bool = False


# ``check(engine, outgoing)`` raises to stop the request, or returns a hold id the recorded call settles;
# ``release(engine, hold_id)`` drops that hold when the request failed and nothing was billed.
BeforeSend = Callable[[Engine, Outgoing], "str | None"]
Release = Callable[[Engine, str], object]
_before_send: list[tuple[BeforeSend, Release]] = []


def before_send(check: BeforeSend, release: Release) -> None:
    """Register the enforcement a tracked client runs before each request (``track(..., enforce=True)``)."""
    if (check, release) not in _before_send:
        _before_send.append((check, release))


def run_before_send(engine: Engine, outgoing: Outgoing) -> list[str]:
    """Every registered check, in order; an exception stops the request. Returns the holds placed."""
    if not _before_send:
        raise RuntimeError("enforce: no spend check is registered; import core.tracking (it registers core.limits)")
    holds: list[str] = []
    try:
        for check, _release in _before_send:
            hold = check(engine, outgoing)
            if hold is not None:
                holds.append(hold)
    except BaseException:
        run_release(engine, holds)
        raise
    return holds


def run_release(engine: Engine, holds: Sequence[str]) -> None:
    for hold in holds:
        for _check, release in _before_send:
            try:
                release(engine, hold)
            except Exception:  # noqa: BLE001 - an unreleased hold expires by itself
                log.exception("could not release hold %r", hold)


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
