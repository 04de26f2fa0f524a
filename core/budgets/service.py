"""Budget use cases for the CLI and the Budgets page: add, status of each, check, history, resend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.anomalies import service as anomalies
from core.budgets import detect
from core.budgets.periods import PERIODS, Period, period_of
from core.budgets.spend import EACH, SCOPE_KINDS, spend_in
from core.money import MoneyError, parse_amount
from core.notify import delivery, targets
from core.recording.tags import TagError, parse_tags
from core.storage.budget_tables import Budget, BudgetDelivery, BudgetEvent
from core.storage.engine import run_write
from core.times import TimeError, now_utc, zone

DEFAULT_THRESHOLDS = (50, 80, 100)
FORMATS = ("standard", "slack")
PROJECT_AFTER = 0.10  # a projection is shown once this fraction of the period has passed
NAME_LIMIT = 200
CENT = Decimal("0.000001")


class BudgetError(ValueError):
    """Bad budget input; the message names the field and the value."""


@dataclass(frozen=True)
class BudgetSpec:
    """A budget as validated from the CLI or the form."""

    name: str
    amount: Decimal
    period: str
    tz: str
    scope_kind: str
    scope_value: str | None
    thresholds: tuple[int, ...]
    webhook_url: str | None
    webhook_secret: str | None
    webhook_format: str
    enforce: bool = False


def parse_thresholds(text: object) -> tuple[int, ...]:
    if text is None or (isinstance(text, str) and not text.strip()):
        return DEFAULT_THRESHOLDS
    parts = [p.strip() for p in str(text).split(",")]
    values: list[int] = []
    for part in parts:
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= 1000:
            raise BudgetError(f"thresholds: {part!r} is not a whole percent from 1 to 1000")
        if int(part) in values:
            raise BudgetError(f"thresholds: {int(part)} is given twice")
        values.append(int(part))
    return tuple(sorted(values))


def parse_scope(text: object) -> tuple[str, str | None]:
    raw = "all" if text is None else str(text).strip()
    if raw in ("", "all"):
        return "all", None
    kind, sep, value = raw.partition(":")
    if kind == "each" and sep:
        if value.strip() not in EACH:
            raise BudgetError(f"scope: {raw!r} is not each:user or each:project")
        return "each", value.strip()
    if not sep or kind not in SCOPE_KINDS or kind == "all":
        raise BudgetError(
            f"scope: {raw!r} is not all, provider:P, model:M, user:U, project:X, tag:T, each:user or each:project"
        )
    value = value.strip()
    if not value or len(value) > 300 or not value.isprintable():
        raise BudgetError(f"scope: {raw!r} names no {kind}")
    if kind == "provider":  # calls keep their provider name lower-cased
        value = value.lower()
    if kind == "tag":  # a tag no call could carry would watch nothing
        try:
            (value,) = parse_tags([value], field="scope")
        except TagError as exc:
            raise BudgetError(f"{exc} (in {raw!r})") from None
    return kind, value


def validate(
    name: object,
    amount: object,
    period: object,
    scope: object = "all",
    tz: object = "UTC",
    thresholds: object = None,
    webhook_url: object = None,
    secret: object = None,
    webhook_format: object = "standard",
    enforce: object = False,
) -> BudgetSpec:
    """Every field checked before anything is written; the first problem is raised, naming its field."""
    clean_name = name.strip() if isinstance(name, str) else ""
    if not clean_name or len(clean_name) > NAME_LIMIT or not clean_name.isprintable():
        raise BudgetError(f"name: {name!r} is not a name of 1 to {NAME_LIMIT} printable characters")
    try:
        value = parse_amount(amount.strip() if isinstance(amount, str) else amount, "amount")
    except MoneyError as exc:
        raise BudgetError(str(exc)) from None
    if value <= 0:
        raise BudgetError(f"amount: {amount!r} is not above zero")
    if period not in PERIODS:
        raise BudgetError(f"period: {period!r} is not day, week or month")
    try:
        tz_name = zone(tz if isinstance(tz, str) else None, "tz").key
    except TimeError as exc:
        raise BudgetError(str(exc)) from None
    kind, scope_value = parse_scope(scope)
    levels = parse_thresholds(thresholds)
    url = webhook_url.strip() if isinstance(webhook_url, str) and webhook_url.strip() else None
    if url is not None:
        try:
            targets.check_saved(url)
        except targets.TargetError as exc:
            raise BudgetError(str(exc)) from None
    key = secret.strip() if isinstance(secret, str) and secret.strip() else None
    if key is not None:
        if url is None:
            raise BudgetError("secret: given without a webhook URL")
        try:
            delivery.secret_key(key)
        except delivery.SecretError as exc:
            raise BudgetError(str(exc)) from None
    fmt = webhook_format or "standard"
    if fmt not in FORMATS:
        raise BudgetError(f"format: {webhook_format!r} is not standard or slack")
    if not isinstance(enforce, bool):
        raise BudgetError(f"enforce: {enforce!r} is not true or false")
    if enforce and kind == "tag":
        raise BudgetError(
            f"enforce: a tag:{scope_value} budget cannot be a hard limit: a check names no tags "
            "(alerts work for it; enforce by user, project, provider or model)"
        )
    return BudgetSpec(clean_name, value, str(period), tz_name, kind, scope_value, levels, url, key, str(fmt), enforce)


@dataclass(frozen=True)
class Added:
    budget: Budget
    secret: str | None  # the secret, to show once (generated when none was given)
    generated: bool


def add_budget(engine: Engine, spec: BudgetSpec, now: datetime | None = None) -> Added:
    """Store a validated budget; a webhook without a secret gets a new one. Names are unique."""
    secret = spec.webhook_secret
    generated = False
    if spec.webhook_url and not secret:
        secret, generated = delivery.new_secret(), True
    moment = now or now_utc()

    def work(conn: Connection) -> int:
        if conn.execute(select(Budget.id).where(Budget.name == spec.name)).first():
            raise BudgetError(f"name: {spec.name!r} is already a budget")
        return conn.execute(
            insert(Budget)
            .values(
                name=spec.name,
                amount=spec.amount,
                currency="USD",
                period=spec.period,
                tz=spec.tz,
                scope_kind=spec.scope_kind,
                scope_value=spec.scope_value,
                thresholds=",".join(str(t) for t in spec.thresholds),
                webhook_url=spec.webhook_url,
                webhook_secret=secret,
                webhook_format=spec.webhook_format,
                enforce=spec.enforce,
                created_at=moment,
            )
            .returning(Budget.id)
        ).scalar_one()

    try:
        budget_id = run_write(engine, work)
    except IntegrityError:  # another process added the same name in between
        raise BudgetError(f"name: {spec.name!r} is already a budget") from None
    detect.forget_budgets(engine)
    with Session(engine, expire_on_commit=False) as session:
        budget = session.get_one(Budget, budget_id)
    return Added(budget, secret, generated)


@dataclass(frozen=True)
class BudgetStatus:
    """A budget in its current period: spend, percent, projection."""

    budget: Budget
    period: Period
    spend: Decimal
    percent: Decimal
    projected: Decimal | None  # None until PROJECT_AFTER of the period has passed
    projected_exceed_at: datetime | None  # when spend reaches the amount at this pace, if within the period
    crossed: tuple[int, ...]  # thresholds with an event in this period
    subject: str | None = None  # an each: budget: the user or project closest to the amount (its spend above)

    @property
    def resets_at(self) -> datetime:
        return self.period.end


def project(spend: Decimal, period: Period, now: datetime) -> Decimal | None:
    """Spend over the elapsed fraction of the period (from its local start); None too early to say."""
    length = int((period.end - period.start).total_seconds())
    elapsed = int((min(now, period.end) - period.start).total_seconds())
    if length <= 0 or elapsed < length * PROJECT_AFTER or elapsed <= 0:
        return None
    return (spend * length / elapsed).quantize(CENT, rounding=ROUND_HALF_EVEN)


def exceed_at(spend: Decimal, amount: Decimal, period: Period, now: datetime) -> datetime | None:
    """When spend reaches the amount at the pace so far, if that falls inside the period."""
    if spend >= amount:
        return None
    elapsed = int((min(now, period.end) - period.start).total_seconds())
    length = int((period.end - period.start).total_seconds())
    if spend <= 0 or elapsed < length * PROJECT_AFTER:
        return None
    seconds = int(amount * elapsed / spend)
    moment = period.start + timedelta(seconds=seconds)
    return moment if moment < period.end else None


def status_of(engine: Engine, budget: Budget, now: datetime, crossed: Sequence[int] = ()) -> BudgetStatus:
    period = period_of(now, budget.period, ZoneInfo(budget.tz))
    subject = None
    if budget.scope_kind == "each":  # the subject closest to the amount stands for the budget
        subject, spend = top_subject(engine, budget, period)
    else:
        spend = spend_in(engine, budget, period.start, period.end)
    percent = (spend * 100 / budget.amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return BudgetStatus(
        budget,
        period,
        spend,
        percent,
        project(spend, period, now),
        exceed_at(spend, budget.amount, period, now),
        tuple(sorted(crossed)),
        subject,
    )


def top_subject(engine: Engine, budget: Budget, period: Period) -> tuple[str | None, Decimal]:
    """An ``each:`` budget's user (project) with the most spend in the period, and that spend."""
    from core.reporting import aggregates as reports

    missing = reports.NO_USER if budget.scope_value == "user" else reports.NO_PROJECT
    rows = reports.breakdown(engine, period.start, period.end, str(budget.scope_value), limit=2)
    named = [r for r in rows if r.key and r.key != missing]
    return (named[0].key, named[0].totals.cost_total) if named else (None, Decimal(0))


def subject_spend(engine: Engine, budget: Budget, period: Period, limit: int) -> list[tuple[str, Decimal]]:
    """An ``each:`` budget's subjects with the most spend this period, the first ``limit``."""
    from core.reporting import aggregates as reports

    missing = reports.NO_USER if budget.scope_value == "user" else reports.NO_PROJECT
    rows = reports.breakdown(engine, period.start, period.end, str(budget.scope_value), limit=limit + 1)
    return [(str(r.key), r.totals.cost_total) for r in rows if r.key and r.key != missing][:limit]


def spend_of_subjects(
    engine: Engine, budget: Budget, period: Period, subjects: Sequence[str]
) -> list[tuple[str, Decimal]]:
    return sorted(
        ((s, spend_in(engine, budget, period.start, period.end, subject=s)) for s in subjects),
        key=lambda item: (-item[1], item[0]),
    )


def list_status(engine: Engine, now: datetime | None = None) -> list[BudgetStatus]:
    """Every budget in its current period."""
    moment = now or now_utc()
    budgets = detect.load_budgets(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(BudgetEvent.budget_id, BudgetEvent.period_start, BudgetEvent.threshold)).all()
    fired: dict[tuple[int, datetime], list[int]] = {}
    for row in rows:
        fired.setdefault((row.budget_id, row.period_start), []).append(row.threshold)
    out = []
    for b in budgets:
        start = period_of(moment, b.period, ZoneInfo(b.tz)).start
        out.append(status_of(engine, b, moment, fired.get((b.id, start), ())))
    return out


def alerting(engine: Engine, now: datetime | None = None) -> list[BudgetStatus]:
    """Budgets at or past a threshold in their current period (one query when none is)."""
    moment = now or now_utc()
    budgets = detect.cached_budgets(engine)
    if not budgets:
        return []
    current = {b.id: period_of(moment, b.period, ZoneInfo(b.tz)).start for b in budgets}
    with engine.connect() as conn:
        rows = conn.execute(
            select(BudgetEvent.budget_id, BudgetEvent.period_start, BudgetEvent.threshold).where(
                BudgetEvent.period_start >= min(current.values())
            )
        ).all()
    fired: dict[int, list[int]] = {}
    for row in rows:
        if current.get(row.budget_id) == row.period_start:
            fired.setdefault(row.budget_id, []).append(row.threshold)
    return [status_of(engine, b, moment, fired[b.id]) for b in budgets if b.id in fired]


def spend_series(
    engine: Engine, budget: Budget, period: Period, now: datetime, subject: str | None = None
) -> list[tuple[datetime, Decimal]]:
    """Cumulative spend from the period's start, at each step (hours for a day, days otherwise) up to now.

    An ``each:`` budget's series is one subject's (the page passes the one closest to the amount).
    """
    if budget.scope_kind == "each" and subject is None:
        return [(period.start, Decimal(0))]
    tz = ZoneInfo(budget.tz)
    edges = [period.start]
    while edges[-1] < min(now, period.end):
        if budget.period == "day":
            edges.append(edges[-1] + timedelta(hours=1))
        else:  # next local midnight
            local = edges[-1].astimezone(tz).date() + timedelta(days=1)
            from core.times import local_midnight

            edges.append(local_midnight(local, tz))
    edges[-1] = min(edges[-1], period.end)
    total = Decimal(0)
    series = [(period.start, total)]
    for lo, hi in zip(edges, edges[1:], strict=False):
        total += spend_in(engine, budget, lo, hi, subject=subject)
        series.append((hi, total))
    return series


@dataclass(frozen=True)
class CheckResult:
    new_events: int
    report: delivery.DeliveryReport
    new_anomalies: int = 0  # anomalies stored by this check (each queued for every alert webhook)


def check(engine: Engine, now: datetime | None = None, send: delivery.Sender = delivery.http_post) -> CheckResult:
    """Reconcile every budget's watched periods, judge the hours due for anomalies, then post what is due."""
    moment = now or now_utc()
    new = detect.reconcile(engine, now=moment)
    found = anomalies.run_pass(engine, moment).new
    return CheckResult(new, delivery.deliver_due(engine, moment, send), found)


@dataclass(frozen=True)
class EventRow:
    """An alert as the history shows it."""

    id: int
    budget_name: str
    period_start: datetime
    period_end: datetime
    threshold: int
    spend: Decimal
    amount: Decimal
    late: bool
    created_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    webhook_id: str
    tz: str = "UTC"  # the budget's zone: its periods are shown in it


def history(engine: Engine, limit: int = 200) -> list[EventRow]:
    """The latest alerts, newest first."""
    query = (
        select(BudgetEvent, Budget.name, Budget.tz)
        .join(Budget, Budget.id == BudgetEvent.budget_id)
        .order_by(BudgetEvent.created_at.desc(), BudgetEvent.id.desc())
        .limit(limit)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
    return [
        EventRow(
            e.id,
            name,
            e.period_start,
            e.period_end,
            e.threshold,
            e.spend,
            e.amount,
            e.late,
            e.created_at,
            e.status,
            e.attempts,
            e.next_attempt_at,
            e.delivered_at,
            e.last_error,
            e.webhook_id,
            tz=budget_tz,
        )
        for e, name, budget_tz in rows
    ]


def attempts_of(engine: Engine, event_id: int) -> list[BudgetDelivery]:
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(BudgetDelivery).where(BudgetDelivery.event_id == event_id).order_by(BudgetDelivery.id)
            )
        )


def resend(engine: Engine, event_id: int) -> delivery.DeliveryReport:
    """Queue an event again and post it now."""
    if not delivery.resend(engine, event_id):
        raise BudgetError(f"event: {event_id} does not exist or its budget has no webhook")
    return delivery.deliver_due(engine)
