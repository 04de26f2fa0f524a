"""Inside the recording transaction: a call's real cost counts on the counters, its hold goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from core.limits import service, store
from core.times import now_utc


def windows(budgets: Sequence[Any], moment: datetime) -> list[store.Window]:
    """What each current period's counters need, from the enforced budgets (shared by budgets of one scope)."""
    every: dict[tuple[datetime, datetime], set[str]] = {}
    named: dict[tuple[datetime, datetime], dict[str, set[str]]] = {}
    whole: set[tuple[datetime, datetime]] = set()
    for budget in budgets:
        period = service.current_period(budget, moment)
        span = (period.start, period.end)
        every.setdefault(span, set())
        named.setdefault(span, {})
        if budget.scope_kind == "each":
            every[span].add(budget.scope_value)
        elif budget.scope_kind == "all":
            whole.add(span)
        elif budget.scope_kind in store.SCOPE_KINDS:
            named[span].setdefault(budget.scope_kind, set()).add(budget.scope_value)
    return [
        store.Window(
            start,
            end,
            frozenset(every[(start, end)]),
            tuple((d, frozenset(v)) for d, v in sorted(named[(start, end)].items())),
            (start, end) in whole,
        )
        for start, end in sorted(every)
    ]


def on_recorded(conn: Connection, calls: Sequence[Any], ids: Sequence[int]) -> None:
    """Add the batch's stored costs to the current period's counters and settle its request ids' holds.

    Costs nothing when no budget is enforced. Runs in the batch's transaction: a failure rolls the
    calls back, so spend and counters never disagree.
    """
    if not ids:
        return
    engine: Engine = conn.engine
    budgets = service.enforced_budgets(engine)
    if not budgets:
        return
    request_ids = [rid for c in calls for rid in (c.request_id, getattr(c, "hold_id", None)) if rid]
    store.add_recorded(conn, windows(budgets, now_utc()), ids, request_ids)
