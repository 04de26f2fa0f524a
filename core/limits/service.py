"""May this user spend this? The check (one read, nothing written) and the hold (a separate write).

As OpenMeter's entitlements answer ``hasAccess`` without side effects and grant apart, ``check``
reads the counters of every enforced budget that applies and decides; ``reserve`` repeats that
decision inside one write transaction holding the counters' row locks (PostgreSQL) or the single
writer (SQLite, BEGIN IMMEDIATE), and only then writes the hold, so concurrent reserving checks
never hold, together with spend, more than a budget's amount.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from core.budgets import detect
from core.budgets.periods import Period, period_of
from core.limits import store
from core.limits.store import Counter, Key
from core.money import MoneyError, parse_amount, to_text
from core.pricing.rates import PricingError
from core.pricing.validation import clean_name, normalize_provider, validate_tokens
from core.storage.budget_tables import Budget
from core.storage.engine import run_write
from core.times import now_utc

DEFAULT_HOLD_SECONDS = 300
MAX_HOLD_SECONDS = 86400
FIELDS = (
    "user",
    "project",
    "provider",
    "model",
    "estimated_cost",
    "input_tokens",
    "output_tokens",
    "reserve",
    "request_id",
    "hold_seconds",
)
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces: what a provider's response id looks like
REFRESH_TRIES = 5


def money_text(amount: Decimal) -> str:
    """Exact decimal text with at least cents: ``"0.30"``, ``"2.00"``, ``"1.9965"`` (every digit kept)."""
    text = to_text(amount)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


class LimitError(ValueError):
    """Bad check input; the message names the field and the value. Nothing was held."""


class RecordedAlready(LimitError):
    """A reserve for a request id whose call is already recorded (its cost counts; a hold would count it twice)."""


@dataclass(frozen=True)
class CheckRequest:
    """A validated check: who, what, how much, and whether to hold it."""

    estimated_cost: Decimal
    user: str | None = None
    project: str | None = None
    provider: str | None = None
    model: str | None = None
    reserve: bool = False
    request_id: str | None = None
    hold_seconds: int = DEFAULT_HOLD_SECONDS


@dataclass(frozen=True)
class LimitState:
    """One enforced budget as it stood before this check's own hold."""

    budget: str
    budget_id: int
    subject: str | None
    period_start: datetime
    period_end: datetime
    amount: Decimal
    spend: Decimal
    held: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.spend - self.held

    def fits(self, estimate: Decimal) -> bool:
        return estimate <= self.remaining

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "subject": self.subject,
            "period_end": self.period_end.isoformat().replace("+00:00", "Z"),
            "amount": money_text(self.amount),
            "spend": money_text(self.spend),
            "held": money_text(self.held),
            "remaining": money_text(self.remaining),
        }


@dataclass(frozen=True)
class Decision:
    """Allowed when the estimate fits every enforced budget that applies (none applying: allowed)."""

    allowed: bool
    limits: tuple[LimitState, ...]
    estimate: Decimal
    held: bool = False  # a hold was written (an allowed reserving check)

    @property
    def denied_by(self) -> LimitState | None:
        return next((s for s in self.limits if not s.fits(self.estimate)), None)

    def as_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "limits": [s.as_json() for s in self.limits]}


# ---- input -----------------------------------------------------------------------------------------


def _name(value: object, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return clean_name(value, field)
    except PricingError as exc:
        raise LimitError(str(exc)) from None


def parse_estimate(value: object, field: str = "estimated_cost") -> Decimal:
    """A non-negative finite USD amount: a decimal string or a JSON number (read from its text, never a float)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LimitError(f"{field}: {value!r} is not a finite number")
        value = repr(value)
    if isinstance(value, Decimal):
        value = str(value)  # named in a message as it was sent: -0.5, not Decimal('-0.5')
    try:
        return parse_amount(value, field)
    except MoneyError as exc:
        raise LimitError(str(exc)) from None


def parse_request_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise LimitError(f"request_id: {value!r} is not 1 to 200 printable ASCII characters without spaces")
    return value


def parse_hold_seconds(value: object) -> int:
    if value is None:
        return DEFAULT_HOLD_SECONDS
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HOLD_SECONDS:
        raise LimitError(f"hold_seconds: {value!r} is not a whole number of seconds from 1 to {MAX_HOLD_SECONDS}")
    return value


def validate(
    engine: Engine | None,
    *,
    user: object = None,
    project: object = None,
    provider: object = None,
    model: object = None,
    estimated_cost: object = None,
    input_tokens: object = None,
    output_tokens: object = None,
    reserve: object = False,
    request_id: object = None,
    hold_seconds: object = None,
) -> CheckRequest:
    """Every field checked (and tokens priced as a call) before anything is read or held."""
    user_c, project_c = _name(user, "user"), _name(project, "project")
    provider_c, model_c = _name(provider, "provider"), _name(model, "model")
    if provider_c is not None:
        provider_c = normalize_provider(provider_c)
    if not isinstance(reserve, bool):
        raise LimitError(f"reserve: {reserve!r} is not true or false")
    rid = parse_request_id(request_id)
    seconds = parse_hold_seconds(hold_seconds)
    if reserve and rid is None:
        raise LimitError("request_id: missing; reserve needs the request id the call will be recorded with")
    tokens_given = input_tokens is not None or output_tokens is not None
    if estimated_cost is not None and tokens_given:
        raise LimitError("estimated_cost: given together with input_tokens/output_tokens; send one or the other")
    if estimated_cost is not None:
        estimate = parse_estimate(estimated_cost)
    elif tokens_given:
        estimate = price_tokens(engine, provider_c, model_c, input_tokens, output_tokens)
    else:
        raise LimitError("estimated_cost: missing (or input_tokens and output_tokens, priced as a call)")
    return CheckRequest(estimate, user_c, project_c, provider_c, model_c, reserve, rid, seconds)


def price_tokens(
    engine: Engine | None, provider: str | None, model: str | None, input_tokens: object, output_tokens: object
) -> Decimal:
    """The cost of a call of these token counts, by the lookup chain now."""
    from core.pricing.lookup import calculate_cost

    if provider is None or model is None:
        missing = "provider" if provider is None else "model"
        raise LimitError(f"{missing}: needed to price input_tokens and output_tokens")
    try:
        tokens_in = validate_tokens(0 if input_tokens is None else input_tokens, "input_tokens")
        tokens_out = validate_tokens(0 if output_tokens is None else output_tokens, "output_tokens")
    except PricingError as exc:
        raise LimitError(str(exc)) from None
    if engine is None:
        raise LimitError("input_tokens: cannot be priced without a database")
    return calculate_cost(engine, provider, model, tokens_in, tokens_out).cost_total


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The check's JSON object; numbers read as exact decimals, NaN and Infinity refused, unknown fields named."""

    def constant(name: str) -> Any:
        raise LimitError(f"estimated_cost: {name} is not a finite number")

    try:
        raw = json.loads(body, parse_float=Decimal, parse_constant=constant)
    except LimitError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise LimitError(f"body: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise LimitError("body: not a JSON object")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise LimitError(f"{unknown[0]}: not a field of a check (fields: {', '.join(FIELDS)})")
    return raw


def request_from_mapping(engine: Engine | None, raw: Mapping[str, Any]) -> CheckRequest:
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise LimitError(f"{unknown[0]}: not a field of a check (fields: {', '.join(FIELDS)})")
    values = {name: raw.get(name) for name in FIELDS}
    values["reserve"] = False if values["reserve"] is None else values["reserve"]
    return validate(engine, **values)


# ---- which budgets apply ---------------------------------------------------------------------------


def enforced_budgets(engine: Engine) -> list[Budget]:
    """The enforced budgets, from budget detection's list (re-read every couple of seconds; at once after an add)."""
    return [b for b in detect.cached_budgets(engine) if b.enforce]


def subject_of(
    budget: Budget, user: str | None, project: str | None, provider: str | None, model: str | None
) -> str | None:
    """The counter subject of a budget for a check or call ('' for one scope), or None when it does not apply."""
    kind, value = budget.scope_kind, budget.scope_value
    if kind == "all":
        return ""
    if kind == "each":
        named = user if value == "user" else project
        return named or None
    given = {"provider": provider, "model": model, "user": user, "project": project}.get(kind)
    return "" if given is not None and given == value else None


_periods: dict[tuple[str, str], Period] = {}  # (period, zone) -> the last period found: one per budget kind


def current_period(budget: Budget, now: datetime) -> Period:
    """The budget's period holding ``now`` (remembered until it ends: checks ask on every call)."""
    kind = (budget.period, budget.tz)
    found = _periods.get(kind)
    if found is None or not found.start <= now < found.end:
        found = _periods[kind] = period_of(now, budget.period, ZoneInfo(budget.tz))
    return found


def applying(engine: Engine, request: CheckRequest, now: datetime) -> list[tuple[Budget, Key, Period]]:
    found = []
    for budget in enforced_budgets(engine):
        subject = subject_of(budget, request.user, request.project, request.provider, request.model)
        if subject is not None:
            period = current_period(budget, now)
            found.append((budget, (budget.id, subject, period.start), period))
    return found


# ---- the check and the hold ------------------------------------------------------------------------


def _states(
    chosen: Sequence[tuple[Budget, Key, Period]], counters: dict[Key, Counter], spends: dict[Key, Decimal]
) -> tuple[LimitState, ...]:
    """Each budget's state: spend from its counter (an ``each:`` budget's from the roll-ups, ``spends``), held
    from its counter (none yet: nothing held)."""
    return tuple(
        LimitState(
            budget.name,
            budget.id,
            key[1] or None,
            period.start,
            period.end,
            budget.amount,
            spends[key] if key in spends else counters[key].spend,
            counters[key].held if key in counters else Decimal(0),
        )
        for budget, key, period in chosen
    )


def _each(chosen: Sequence[tuple[Budget, Key, Period]]) -> list[tuple[Key, str, datetime]]:
    """The ``each:`` budgets among ``chosen``, as ``store.each_spend`` reads them."""
    return [(key, str(budget.scope_value), period.end) for budget, key, period in chosen if budget.scope_kind == "each"]


def _behind(chosen: Sequence[tuple[Budget, Key, Period]], counters: dict[Key, Counter], *, made: bool) -> list[Any]:
    """The budgets whose counter must be summed (missing or stale) first; ``made``: an ``each:`` budget's must
    exist too (a reserve locks it), though its spend is never on it."""
    return [
        (b, k, p)
        for b, k, p in chosen
        if (k not in counters and (made or b.scope_kind != "each"))
        or (k in counters and b.scope_kind != "each" and not counters[k].fresh)
    ]


def _reading(engine: Engine) -> Connection:
    """A connection for the check's reads. PostgreSQL: autocommit, so the two statements are not wrapped in a
    BEGIN and a ROLLBACK of their own (two round trips of a check's five; READ COMMITTED gives each statement its
    own snapshot either way). SQLite: as every read."""
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return engine.connect()


def _fresh_counters(
    engine: Engine, chosen: Sequence[tuple[Budget, Key, Period]], now: datetime, exclude: str | None, made: bool = False
) -> tuple[dict[Key, Counter], dict[Key, Decimal]]:
    """The counters, each summed again from the roll-ups first where it is missing or stale (``made``: the
    ``each:`` budgets' made too), and the ``each:`` budgets' spend."""
    keys = [key for _b, key, _p in chosen]
    each = _each(chosen)
    for _ in range(REFRESH_TRIES):
        with _reading(engine) as conn:
            counters = store.read(conn, keys, now, exclude_request=exclude)
            behind = _behind(chosen, counters, made=made)
            if not behind:
                return counters, store.each_spend(conn, each) if each and not made else {}
        for budget, key, period in behind:
            store.refresh(engine, budget, key, period.end, counters.get(key))
    raise RuntimeError("the budget counters kept changing while being summed; try again")


def check(engine: Engine, request: CheckRequest, now: datetime | None = None) -> Decision:
    """Allowed when the estimate fits every enforced budget that applies. Holds nothing.

    Reads the counters once; a counter that is missing or stale is first summed again from the
    roll-ups (a cache fill, not a change of anything a user sees).
    """
    moment = now or now_utc()
    chosen = applying(engine, request, moment)
    if not chosen:
        return Decision(True, (), request.estimated_cost)
    counters, spends = _fresh_counters(engine, chosen, moment, request.request_id)
    states = _states(chosen, counters, spends)
    return Decision(all(s.fits(request.estimated_cost) for s in states), states, request.estimated_cost)


def _lock_order(item: tuple[Budget, Key, Period]) -> tuple[int, datetime, datetime, int]:
    """Where a reserve's counter comes in the one lock order (``store.lock_rank``, period start and end, budget;
    a reserve has one subject a budget, so the subject never decides)."""
    budget, key, period = item
    return store.lock_rank(budget.scope_kind, budget.scope_value), period.start, period.end, budget.id


# each: counters this process has seen, per database (never deleted within their period but with their budget;
# one missing after all is made on the retry below): a reserve skips the insert that would make them
_known: dict[str, set[Key]] = {}


def reserve(engine: Engine, request: CheckRequest, now: datetime | None = None) -> Decision:
    """Decide under the counters' locks and, when allowed, hold the estimate (replacing this request id's hold).

    An ``each:`` budget's spend is read as of the locks: a recording that settled a hold on that counter before
    the lock was granted is seen with its call's cost, one still waiting for the lock is seen with its hold. On
    PostgreSQL the statement that takes the locks reads it too, and when a counter changed while that statement
    waited (a recording settled on it after the statement's snapshot) it is read again in a statement of its
    own, whose snapshot is taken after the locks."""
    if request.request_id is None:
        raise LimitError("request_id: missing; reserve needs the request id the call will be recorded with")
    rid = request.request_id
    moment = now or now_utc()
    chosen = applying(engine, request, moment)
    keys = [key for _b, key, _p in sorted(chosen, key=_lock_order)]  # locked in this order, as every writer
    each = _each(chosen)
    known = _known.setdefault(str(engine.url), set())
    for attempt in range(REFRESH_TRIES):
        if chosen and attempt:  # a counter was missing or stale: made or summed again, outside the lock
            _fresh_counters(engine, chosen, moment, rid, made=True)

        def work(conn: Connection) -> Decision | None:
            # an each: counter holds no spend, so it is made here, before any lock is taken
            unmade = [(key, end) for key, _dimension, end in each if key not in known]
            locked = store.reserve_read(conn, keys, moment, rid, make=unmade, each=each)
            counters = locked.counters
            if len(known) > 100_000:  # a long-lived process: forget, do not grow without end
                known.clear()
            known.update(key for key, _d, _e in each if key in counters)
            if locked.recorded:
                raise RecordedAlready(f"request_id: {rid!r} is already recorded; its real cost counts, nothing to hold")
            if _behind(chosen, counters, made=True):
                return None  # missing, or a recording or a reprice came in between: sum again, outside the lock
            spends = locked.spends if locked.spends is not None else store.each_spend(conn, each) if each else {}
            states = _states(chosen, counters, spends)
            allowed = all(s.fits(request.estimated_cost) for s in states)
            if allowed:
                expires = moment + timedelta(seconds=request.hold_seconds)
                if locked.ids is not None:  # nothing of this request id's to replace, nothing expired to sweep
                    store.hold(conn, rid, [locked.ids[k] for k in keys], request.estimated_cost, moment, expires)
                else:
                    holds = [(k, request.estimated_cost) for k in keys]
                    swept = any(counters[k].expired for k in keys)
                    store.replace_holds(conn, rid, holds, moment, expires, sweep=swept)
            else:
                store.count_denial(
                    conn,
                    [k for (_b, k, _p), s in zip(chosen, states, strict=True) if not s.fits(request.estimated_cost)],
                )
            return Decision(allowed, states, request.estimated_cost, held=allowed)

        decided = run_write(engine, work)
        if decided is not None:
            return decided
    raise RuntimeError("the budget counters kept changing while being summed; try again")


def record_denial(engine: Engine, decision: Decision) -> None:
    """Count a denied check against each budget it did not fit (the Budgets page shows the count)."""
    keys = [(s.budget_id, s.subject or "", s.period_start) for s in decision.limits if not s.fits(decision.estimate)]
    if keys:
        ends = {(s.budget_id, s.subject or "", s.period_start): s.period_end for s in decision.limits}

        def work(conn: Connection) -> None:
            store.make_counters(conn, [(key, ends[key]) for key in keys])  # an each: budget's may not exist yet
            store.lock_counters(conn, keys)  # in the lock order, as every writer takes them
            store.count_denial(conn, keys)

        run_write(engine, work)


def decide(engine: Engine, request: CheckRequest, now: datetime | None = None) -> Decision:
    """What the route, the command and ``track(enforce=True)`` do: check (or reserve), and count a denial."""
    if request.reserve:
        return reserve(engine, request, now)  # counts its own denials, in its transaction
    decision = check(engine, request, now)
    if not decision.allowed:
        record_denial(engine, decision)
    return decision


def release(engine: Engine, request_id: str) -> None:
    """Drop a request id's hold (the call was not made after all): its counters locked first, as every writer
    takes them before their holds."""

    def work(conn: Connection) -> None:
        store.lock_counters(conn, sorted(store.hold_keys(conn, [request_id])))
        store.replace_holds(conn, request_id, [], now_utc(), now_utc())

    run_write(engine, work)


def sweep_expired_holds(engine: Engine, now: datetime | None = None) -> int:
    """Release every expired hold, outside the request path (the server's loop runs it every few seconds).

    A reserve sweeps the counters it locks, but a client that stops reserving (crashed mid-burst) leaves
    its expired holds behind, and every check on those counters would sum them until the next reserve.
    One read when there is nothing to do; returns how many counters were swept."""
    moment = now or now_utc()
    with engine.connect() as conn:
        if not store.any_expired(conn, moment):
            return 0
    total = 0
    while True:
        swept = run_write(engine, lambda conn: store.sweep_expired(conn, moment))
        total += swept
        if swept < store.SWEEP_BATCH:
            return total


def parse_request_json(engine: Engine, body: bytes) -> CheckRequest:
    """``POST /api/v1/check``'s body as a validated request."""
    raw = parse_json_body(body)
    try:
        return request_from_mapping(engine, raw)
    except InvalidOperation as exc:  # pragma: no cover - parse_amount turns these into LimitError
        raise LimitError(f"estimated_cost: {exc}") from None
