"""Inside the recording transaction: a call's real cost counts on the counters, its hold goes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from core.limits import service, store
from core.limits.store import Key
from core.times import now_utc

log = logging.getLogger(__name__)


def on_recorded(conn: Connection, calls: Sequence[Any], ids: Sequence[int]) -> None:
    """Add the batch's stored costs to the current period's counters and delete its request ids' holds.

    An ``each:user`` / ``each:project`` budget's spend is not kept here (a check reads it from the entity
    roll-ups this transaction keeps): only its counters that hold this batch's request ids are touched.
    Costs nothing when no budget is enforced. Runs in the batch's transaction: a failure rolls the
    calls back, so spend and counters never disagree.
    """
    if not ids:
        return
    engine: Engine = conn.engine
    budgets = service.enforced_budgets(engine)
    if not budgets:
        return
    moment = now_utc()
    windows: dict[tuple[datetime, datetime], list[Any]] = {}
    for budget in budgets:
        period = service.current_period(budget, moment)
        windows.setdefault((period.start, period.end), []).append(budget)
    spans = sorted(windows)
    users = [b.scope_value for b in budgets if b.scope_kind == "user" and b.scope_value]
    projects = [b.scope_value for b in budgets if b.scope_kind == "project" and b.scope_value]
    sums = store.batch_sums(conn, ids, spans, users, projects)  # summed in SQL, not read call by call
    added: dict[Key, tuple[datetime, Decimal]] = {}
    for i, (start, end) in enumerate(spans):
        if (i, "all", "") not in sums:
            continue  # no call of the batch in this period
        for budget in windows[(start, end)]:
            if budget.scope_kind == "each":
                continue
            value = "" if budget.scope_kind == "all" else (budget.scope_value or "")
            found = sums.get((i, budget.scope_kind, value))
            if found is not None:
                added[(budget.id, "", start)] = (end, found)
    request_ids = [rid for c in calls for rid in (c.request_id, getattr(c, "hold_id", None)) if rid]
    settled: dict[Key, Decimal] = {}
    held_on = store.hold_keys(conn, request_ids) if request_ids else set()
    if held_on:  # the counters' locks before the holds, in the lock order, as reserve and sweep take them
        store.lock_counters(conn, sorted(held_on | set(added)))
        settled = store.settle(conn, request_ids)
    ranks = {b.id: store.lock_rank(b.scope_kind, b.scope_value) for b in budgets}
    store.apply_recorded(conn, added, settled, ranks)
