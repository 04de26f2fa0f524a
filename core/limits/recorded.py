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
    # the batch's cost per (provider, model, user, project) in each current period (few groups, many calls)
    sums: dict[tuple[datetime, datetime], dict[tuple[str, str, str | None, str | None], Decimal]] = {}
    for timestamp, provider, model, user, project, cost in store.batch_rows(conn, ids):
        for window in windows:
            if window[0] <= timestamp < window[1]:
                group = sums.setdefault(window, {})
                key4 = (provider, model, user, project)
                group[key4] = group.get(key4, Decimal(0)) + cost
    added: dict[Key, tuple[datetime, Decimal]] = {}
    for (start, end), groups in sums.items():
        for budget in windows[(start, end)]:
            for (provider, model, user, project), cost in groups.items():
                subject = service.subject_of(budget, user, project, provider, model)
                if subject is None:
                    continue
                key = (budget.id, subject, start)
                total = added.get(key, (end, Decimal(0)))[1]
                added[key] = (end, total + cost)
    request_ids = [rid for c in calls for rid in (c.request_id, getattr(c, "hold_id", None)) if rid]
    settled = store.held_by(conn, request_ids) if request_ids else {}
    store.apply_recorded(conn, added, settled, request_ids if settled else [])
