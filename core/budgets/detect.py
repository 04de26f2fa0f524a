"""Detection: which thresholds of which periods are crossed, written once to the outbox.

Spend is summed from what is stored; a crossing becomes a ``budget_events`` row
through ``INSERT ... ON CONFLICT DO NOTHING`` on the unique key (budget, period,
threshold), each budget's crossings in a transaction of their own, so that one budget
failing (an overflow, a bad row) never stops another's alerts. However many
calls, processes or restarts see the same crossing, one row exists, and delivery
only reads rows. Periods that ended before a budget was made are not watched; a
crossing found after its period closed (a back-dated call, a reprice) is marked late.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.budgets.periods import Period, period_of, periods_between
from core.budgets.spend import spend_by_period, spend_by_subject
from core.storage.budget_tables import NO_WEBHOOK, PENDING, Budget, BudgetEvent
from core.storage.engine import run_write
from core.storage.tables import PriceCorrection, UsageRecord
from core.times import now_utc

log = logging.getLogger(__name__)
QUARTER = 900  # every local midnight in every zone falls on a quarter hour
BUDGET_CACHE_SECONDS = 2.0


def crossed(spend: Decimal, amount: Decimal, thresholds: Iterable[int]) -> list[int]:
    """Thresholds (whole percents) that ``spend`` has reached: spend >= amount * t / 100, exactly."""
    return [t for t in thresholds if spend * 100 >= amount * t]


def load_budgets(engine: Engine) -> list[Budget]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Budget).order_by(Budget.id)))


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, list[Budget]]] = {}


def cached_budgets(engine: Engine) -> list[Budget]:
    """The budgets, re-read at most every couple of seconds: recording asks on every batch."""
    key = str(engine.url)
    moment = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and moment - hit[0] < BUDGET_CACHE_SECONDS:
            return hit[1]
    budgets = load_budgets(engine)
    with _cache_lock:
        _cache[key] = (moment, budgets)
    return budgets


def forget_budgets(engine: Engine | None = None) -> None:
    """Drop the cached budget list (after a budget is added or changed)."""
    with _cache_lock:
        if engine is None:
            _cache.clear()
        else:
            _cache.pop(str(engine.url), None)


def watched_periods(budget: Budget, now: datetime) -> list[Period]:
    """Every period of the budget from the one it was made in to the current one."""
    tz = ZoneInfo(budget.tz)
    return periods_between(min(budget.created_at, now), now, budget.period, tz) or [period_of(now, budget.period, tz)]


def periods_touching(budget: Budget, quarters: Sequence[int]) -> list[Period]:
    """The budget's periods holding any of these sorted quarter-hour starts (epoch s), from its first period on."""
    tz = ZoneInfo(budget.tz)
    first = period_of(budget.created_at, budget.period, tz).start.timestamp()
    found: list[Period] = []
    i = bisect_left(quarters, first)
    while i < len(quarters):
        period = period_of(datetime.fromtimestamp(quarters[i], UTC), budget.period, tz)
        found.append(period)
        i = bisect_left(quarters, period.end.timestamp(), i + 1)
    return found


@dataclass(frozen=True)
class Crossing:
    budget: Budget
    period: Period
    threshold: int
    spend: Decimal
    subject: str = ""  # the user or project of an each: budget


def _known(engine: Engine, budget_ids: list[int], since: datetime) -> set[tuple[int, datetime, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(BudgetEvent.budget_id, BudgetEvent.period_start, BudgetEvent.threshold, BudgetEvent.subject).where(
                BudgetEvent.budget_id.in_(budget_ids), BudgetEvent.period_start >= since
            )
        ).all()
    return {(r.budget_id, r.period_start, r.threshold, r.subject) for r in rows}


def _each_crossings(
    engine: Engine, budget: Budget, periods: Sequence[Period], known: set[tuple[int, datetime, int, str]]
) -> list[Crossing]:
    """An each: budget: every subject on its own, its spend per period summed for all subjects in one report."""
    found: list[Crossing] = []
    for period in periods:
        for subject, spend in spend_by_subject(engine, budget, period.start, period.end).items():
            for t in crossed(spend, budget.amount, budget.threshold_list):
                if (budget.id, period.start, t, subject) not in known:
                    found.append(Crossing(budget, period, t, spend, subject))
    return found


def find_crossings(engine: Engine, watch: dict[int, tuple[Budget, list[Period]]]) -> list[Crossing]:
    """Crossings not yet in the outbox; a period whose thresholds all fired is not even summed."""
    watch = {k: v for k, v in watch.items() if v[1]}
    if not watch:
        return []
    since = min(p.start for _b, periods in watch.values() for p in periods)
    known = _known(engine, list(watch), since)
    found: list[Crossing] = []
    for budget, periods in watch.values():
        if budget.scope_kind == "each":
            found += _each_crossings(engine, budget, periods, known)
            continue
        thresholds = budget.threshold_list
        open_periods = [p for p in periods if any((budget.id, p.start, t, "") not in known for t in thresholds)]
        if not open_periods:
            continue
        try:
            spends = spend_by_period(engine, budget, open_periods)
        except Exception as exc:  # noqa: BLE001 - one budget's failure holds back no other's alerts
            log.error("budget %r: summing its spend failed, its alerts wait: %s", budget.name, exc)
            continue
        for period in open_periods:
            spend = spends.get(period.start, Decimal(0))
            for t in crossed(spend, budget.amount, thresholds):
                if (budget.id, period.start, t, "") not in known:
                    found.append(Crossing(budget, period, t, spend))
    return found


def _insert_statement(conn: Connection):  # type: ignore[no-untyped-def]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(BudgetEvent).on_conflict_do_nothing(
        index_elements=["budget_id", "period_start", "threshold", "subject"]
    )
    return statement.returning(BudgetEvent.id)  # a row back only when this insert made it


def write_crossings(engine: Engine, crossings: Sequence[Crossing], now: datetime | None = None) -> int:
    """Write crossings to the outbox, one transaction per budget; returns how many rows are new.

    A budget whose write fails is logged and skipped (its crossings are found again by the
    next pass); the other budgets' events are written all the same.
    """
    if not crossings:
        return 0
    moment = now or now_utc()
    by_budget: dict[int, list[Crossing]] = {}
    for c in crossings:
        by_budget.setdefault(c.budget.id, []).append(c)
    new = 0
    for group in by_budget.values():
        try:
            new += _write_budget_crossings(engine, group, moment)
        except Exception as exc:  # noqa: BLE001 - one budget's failure holds back no other's alerts
            log.error("budget %r: writing its alerts failed, the next pass retries: %s", group[0].budget.name, exc)
    return new


def _write_budget_crossings(engine: Engine, crossings: Sequence[Crossing], moment: datetime) -> int:
    def work(conn: Connection) -> int:
        statement = _insert_statement(conn)
        new = 0
        for c in crossings:
            sends = bool(c.budget.webhook_url) and c.budget.webhook_disabled_at is None
            result = conn.execute(
                statement,
                dict(
                    budget_id=c.budget.id,
                    period_start=c.period.start,
                    period_end=c.period.end,
                    threshold=c.threshold,
                    subject=c.subject,
                    webhook_id=f"msg_{secrets.token_hex(12)}",
                    spend=c.spend,
                    amount=c.budget.amount,
                    late=c.period.end <= moment,
                    created_at=moment,
                    status=PENDING if sends else NO_WEBHOOK,
                    attempts=0,
                    next_attempt_at=moment if sends else None,
                ),
            )
            new += len(result.all())
        return new

    return run_write(engine, work)


def reconcile(engine: Engine, budgets: Sequence[Budget] | None = None, *, now: datetime | None = None) -> int:
    """Check every watched period of every budget (or of ``budgets``); returns the new events."""
    moment = now or now_utc()
    chosen = load_budgets(engine) if budgets is None else list(budgets)
    watch = {b.id: (b, watched_periods(b, moment)) for b in chosen}
    return write_crossings(engine, find_crossings(engine, watch), moment)


def reconcile_quarters(engine: Engine, budgets: Sequence[Budget], quarters: Sequence[int]) -> int:
    """Check the periods of ``budgets`` that hold these sorted quarter-hour starts."""
    watch = {b.id: (b, periods_touching(b, quarters)) for b in budgets}
    return write_crossings(engine, find_crossings(engine, watch))


# Detection after recording runs at most this often per process and database; batches in
# between only add the periods they touch, checked by the next pass (a timer runs it if no
# batch comes). Its cost is then bounded whatever the batch size: one call at a time too.
MIN_INTERVAL_SECONDS = 1.0


class _Pending:
    """Periods touched by recorded calls and not checked yet, for one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.quarters: dict[int, set[int]] = {}  # budget id -> quarter-hour starts (epoch s)
        self.last_pass = float("-inf")
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()  # held while a pass runs: one pass at a time


_pending_lock = threading.Lock()
_pending: dict[str, _Pending] = {}


def _touched_quarters(budgets: Sequence[Budget], calls: Sequence[object]) -> dict[int, set[int]]:
    """For each budget whose scope some call matches: the quarter hours those calls fall in."""
    # every period boundary of every zone is on a quarter hour: a call's quarter tells its period
    quarters = [int(call.timestamp.timestamp()) // QUARTER * QUARTER for call in calls]  # type: ignore[attr-defined]
    all_quarters = set(quarters)
    by_scope: dict[tuple[str, object], set[int]] = {}
    for kind in {b.scope_kind for b in budgets} - {"all", "each"}:
        wanted = {b.scope_value for b in budgets if b.scope_kind == kind}
        if kind == "tag":  # a call matches each tag budget of each of its tags
            for call, q in zip(calls, quarters, strict=True):
                for tag in getattr(call, "tags", ()):
                    if tag in wanted:
                        by_scope.setdefault((kind, tag), set()).add(q)
            continue
        attribute = "user" if kind == "user" else kind
        for call, q in zip(calls, quarters, strict=True):
            value = getattr(call, attribute, None)
            if value in wanted:
                by_scope.setdefault((kind, value), set()).add(q)
    touched: dict[int, set[int]] = {}
    named = {
        each: {q for call, q in zip(calls, quarters, strict=True) if getattr(call, each, None)}
        for each in ("user", "project")
    }
    for b in budgets:
        found: set[int] | None
        if b.scope_kind == "each":
            found = named[str(b.scope_value)]
        else:
            found = all_quarters if b.scope_kind == "all" else by_scope.get((b.scope_kind, b.scope_value))
        if found:
            touched[b.id] = set(found)
    return touched


def _run_pass(state: _Pending) -> int:
    """Check every pending period now (one pass at a time per database)."""
    with state.lock:
        with _pending_lock:
            quarters, state.quarters = state.quarters, {}
            state.last_pass = time.monotonic()
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
        if not quarters:
            return 0
        try:
            budgets = {b.id: b for b in cached_budgets(state.engine)}
            watch = {
                i: (budgets[i], periods_touching(budgets[i], sorted(q))) for i, q in quarters.items() if i in budgets
            }
            return write_crossings(state.engine, find_crossings(state.engine, watch))
        except Exception as exc:  # noqa: BLE001 - the calls are committed; the reconciler retries
            log.warning("budget detection after recording failed (the reconciler will retry): %s", exc)
            return 0


def flush(engine: Engine | None = None) -> int:
    """Check now whatever recorded calls left pending (all databases when ``engine`` is None)."""
    with _pending_lock:
        states = list(_pending.values()) if engine is None else [s for s in [_pending.get(str(engine.url))] if s]
    return sum(_run_pass(state) for state in states)


def on_recorded(engine: Engine, calls: Sequence[object]) -> int:
    """After a batch of calls committed: check the budgets whose scope they match, in the periods they touch.

    Costs one cached look-up when there are no budgets. Runs the check at once unless one ran
    less than ``MIN_INTERVAL_SECONDS`` ago; then a timer runs it when the interval is over.
    Never raises: the calls are stored already, and the reconciler catches anything missed.
    Returns the events written by this call (0 when the check was deferred).
    """
    try:
        budgets = cached_budgets(engine)
        if not budgets or not calls:
            return 0
        touched = _touched_quarters(budgets, calls)
        if not touched:
            return 0
        key = str(engine.url)
        with _pending_lock:
            state = _pending.get(key)
            if state is None or state.engine is not engine:
                state = _pending[key] = _Pending(engine)
            for budget_id, quarters in touched.items():
                state.quarters.setdefault(budget_id, set()).update(quarters)
            wait = state.last_pass + MIN_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                if state.timer is None:
                    state.timer = threading.Timer(wait, _run_pass, args=(state,))
                    state.timer.daemon = True
                    state.timer.start()
                return 0
        return _run_pass(state)
    except Exception as exc:  # noqa: BLE001 - the calls are committed; never fail the caller for an alert check
        log.warning("budget detection after recording failed (the reconciler will retry): %s", exc)
        return 0


atexit.register(flush)


class Watermark:
    """What the reconciler has seen: the last call id, the last reprice id, and the budgets as they were."""

    def __init__(self) -> None:
        self.call_id = 0
        self.correction_id = 0
        self.budgets: frozenset[tuple[int, str, str, str]] | None = None


def _touched(conn: Connection, mark: Watermark, last_call: int, last_fix: int) -> tuple[datetime, datetime] | None:
    """The earliest and latest timestamp of calls stored or repriced since the watermark."""
    bounds: list[datetime] = []
    if last_call > mark.call_id:
        lo, hi = conn.execute(
            select(func.min(UsageRecord.timestamp), func.max(UsageRecord.timestamp)).where(
                UsageRecord.id > mark.call_id
            )
        ).one()
        bounds += [t for t in (lo, hi) if t is not None]
    if last_fix > mark.correction_id:
        lo, hi = conn.execute(
            select(func.min(UsageRecord.timestamp), func.max(UsageRecord.timestamp))
            .join(PriceCorrection, PriceCorrection.usage_id == UsageRecord.id)
            .where(PriceCorrection.id > mark.correction_id)
        ).one()
        bounds += [t for t in (lo, hi) if t is not None]
    return (min(bounds), max(bounds)) if bounds else None


def reconcile_changes(engine: Engine, mark: Watermark, now: datetime | None = None) -> int:
    """The running server's pass: everything the first time, then new or changed budgets in full,
    and the others only in the periods holding calls stored or repriced since the last pass."""
    moment = now or now_utc()
    budgets = load_budgets(engine)
    with engine.connect() as conn:
        last_call = conn.execute(select(func.max(UsageRecord.id))).scalar() or 0
        last_fix = conn.execute(select(func.max(PriceCorrection.id))).scalar() or 0
        span = None if mark.budgets is None else _touched(conn, mark, last_call, last_fix)
    states = {b.id: (b.id, b.thresholds, str(b.amount), b.scope) for b in budgets}
    seen = mark.budgets or frozenset()
    changed = [b for b in budgets if states[b.id] not in seen]
    steady = [b for b in budgets if states[b.id] in seen]
    watch: dict[int, tuple[Budget, list[Period]]] = {b.id: (b, watched_periods(b, moment)) for b in changed}
    if span is not None:
        for b in steady:
            tz = ZoneInfo(b.tz)
            first = period_of(b.created_at, b.period, tz).start
            lo, hi = max(span[0], first), span[1]
            if hi >= lo:
                watch[b.id] = (b, periods_between(lo, hi + timedelta(seconds=1), b.period, tz))
    new = write_crossings(engine, find_crossings(engine, watch), moment)
    mark.call_id, mark.correction_id, mark.budgets = last_call, last_fix, frozenset(states.values())
    return new
