"""Anomalies' database access: an hour's spends and baselines in SQL, first calls, state, and the outbox.

Providers and models come from the hourly series (``usage_rollups``, grain 3600); users and
projects from the log's covering time index (``ix_usage_time`` holds timestamp, user, project
and cost), read over five one-hour ranges. Python gets one row per key that spent at least
USD 1 in the judged hour, never a call.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.storage.anomaly_tables import Alert, AnomalyRecord
from core.storage.budget_tables import PENDING, BudgetEvent
from core.storage.columns import Money, UTCDateTime
from core.storage.engine import run_write
from core.storage.tables import PriceCorrection, Setting, UsageRecord, UsageRollup

HOUR_SECONDS = 3600
ALL_MODELS = ""  # the series' row of a provider's total (core.recording.rollups.ALL_MODELS)
ONE_USD = Decimal(1)
STATE_KEYS = ("judged_from", "judged_through", "call_id", "correction_id")


@dataclass(frozen=True)
class HourRow:
    """One key's spend in the judged hour and in the same hour of each of the four weeks before."""

    scope: str
    key: str
    spend: Decimal
    history: tuple[Decimal, Decimal, Decimal, Decimal]


def _money(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def _weekly_sums(when: list, amount) -> list:  # type: ignore[no-untyped-def,type-arg]
    """One exact sum per hour (the judged one first), a week without calls as 0."""
    return [
        type_coerce(func.sum(case((w, amount), else_=literal(0))), Money()).label(f"w{i}") for i, w in enumerate(when)
    ]


def series_rows(conn: Connection, hours: Sequence[datetime]) -> list[HourRow]:
    """Providers' and models' spends from the hourly series: five primary-key ranges."""
    starts = [int(h.timestamp()) for h in hours]
    r = UsageRollup
    sums = _weekly_sums([r.bucket_start == s for s in starts], r.cost_total)
    query = (
        select(r.provider, r.model, *sums)
        .where(r.grain == HOUR_SECONDS, r.bucket_start.in_(starts))
        .group_by(r.provider, r.model)
        .having(sums[0] >= literal(ONE_USD, Money()))
    )
    out = []
    for row in conn.execute(query):
        weeks = [_money(getattr(row, f"w{i}")) for i in range(5)]
        scope, key = ("provider", row.provider) if row.model == ALL_MODELS else ("model", f"{row.provider}/{row.model}")
        out.append(HourRow(scope, key, weeks[0], (weeks[1], weeks[2], weeks[3], weeks[4])))
    return out


def entity_rows(conn: Connection, hours: Sequence[datetime]) -> list[HourRow]:
    """Users' and projects' spends from the log's covering time index over the five hours.

    A VALUES list of the hours drives one index range each; the calls of those hours are
    materialised once and grouped twice. Calls with no user (project) are no key.
    """
    # a UNION of one-row selects, not VALUES: SQLite names no VALUES columns
    ranges = union_all(
        *[
            select(
                literal(i, Integer).label("k"),
                literal(h, UTCDateTime()).label("lo"),
                literal(h + timedelta(hours=1), UTCDateTime()).label("hi"),
            )
            for i, h in enumerate(hours)
        ]
    ).subquery("hours")
    log = UsageRecord
    calls = (
        select(ranges.c.k, log.user_id, log.project, log.cost_total)
        .select_from(ranges)
        .join(log, and_(log.timestamp >= ranges.c.lo, log.timestamp < ranges.c.hi))
        .cte("hour_calls")
        .prefix_with("MATERIALIZED")
    )
    parts = []
    for scope, name in (("user", calls.c.user_id), ("project", calls.c.project)):
        sums = _weekly_sums([calls.c.k == i for i in range(5)], calls.c.cost_total)
        parts.append(
            select(literal(scope).label("scope"), name.label("key"), *sums)
            .where(name.is_not(None), name != "")
            .group_by(name)
            .having(sums[0] >= literal(ONE_USD, Money()))
        )
    out = []
    for row in conn.execute(union_all(*parts)):
        weeks = [_money(getattr(row, f"w{i}")) for i in range(5)]
        out.append(HourRow(row.scope, row.key, weeks[0], (weeks[1], weeks[2], weeks[3], weeks[4])))
    return out


def first_call(conn: Connection, scope: str, key: str) -> datetime | None:
    """When a key's first call was: one index endpoint (a provider's walks its roll-ups down to the log)."""
    log = UsageRecord
    if scope == "user":
        return conn.execute(select(func.min(log.timestamp)).where(log.user_id == key)).scalar()
    if scope == "project":
        return conn.execute(select(func.min(log.timestamp)).where(log.project == key)).scalar()
    if scope == "model":
        provider, _, model = key.partition("/")
        return conn.execute(
            select(log.timestamp).where(log.model == model, log.provider == provider).order_by(log.timestamp).limit(1)
        ).scalar()
    r = UsageRollup  # the log has no provider index: its first day, then quarter, then call
    day = conn.execute(
        select(r.bucket_start)
        .where(r.grain == 86400, r.provider == key, r.model == ALL_MODELS)
        .order_by(r.bucket_start)
        .limit(1)
    ).scalar()
    if day is None:
        return None
    quarter = conn.execute(
        select(r.bucket_start)
        .where(
            r.grain == 900,
            r.bucket_start >= day,
            r.bucket_start < day + 86400,
            r.provider == key,
            r.model == ALL_MODELS,
        )
        .order_by(r.bucket_start)
        .limit(1)
    ).scalar()
    lo = datetime.fromtimestamp(quarter if quarter is not None else day, UTC)
    hi = lo + timedelta(seconds=900 if quarter is not None else 86400)
    return conn.execute(
        select(func.min(log.timestamp)).where(log.timestamp >= lo, log.timestamp < hi, log.provider == key)
    ).scalar()


def _epoch_hour(conn: Connection):  # type: ignore[no-untyped-def]
    """A stored timestamp's UTC hour as epoch seconds, in the database's own SQL."""
    if conn.dialect.name == "sqlite":
        epoch = cast(func.strftime("%s", UsageRecord.timestamp), BigInteger)
    else:
        epoch = cast(func.floor(func.extract("epoch", UsageRecord.timestamp)), BigInteger)
    return epoch - epoch % HOUR_SECONDS


def last_ids(conn: Connection) -> tuple[int, int]:
    """The last call id and the last reprice id: what a pass has seen."""
    call = conn.execute(select(func.max(UsageRecord.id))).scalar() or 0
    fix = conn.execute(select(func.max(PriceCorrection.id))).scalar() or 0
    return int(call), int(fix)


def changed_hours(conn: Connection, call_id: int, correction_id: int, upto_call: int, upto_fix: int) -> set[datetime]:
    """The UTC hours of calls stored, or repriced, after the watermark (primary-key ranges)."""
    hour = _epoch_hour(conn)
    found: set[int] = set()
    if upto_call > call_id:
        found |= set(
            conn.execute(select(hour).distinct().where(UsageRecord.id > call_id, UsageRecord.id <= upto_call)).scalars()
        )
    if upto_fix > correction_id:
        found |= set(
            conn.execute(
                select(hour)
                .distinct()
                .select_from(PriceCorrection)
                .join(UsageRecord, UsageRecord.id == PriceCorrection.usage_id)
                .where(PriceCorrection.id > correction_id, PriceCorrection.id <= upto_fix)
            ).scalars()
        )
    return {datetime.fromtimestamp(int(h), UTC) for h in found}


def _keys_of_new_calls(
    conn: Connection, call_id: int, upto_call: int, before: datetime
) -> list[tuple[str, str, datetime]]:
    """(scope, key, earliest new call) of the users, projects and models whose new calls start before ``before``.

    Providers are left out: the log has no provider index to find what a provider's first call was.
    """
    log = UsageRecord
    new = and_(log.id > call_id, log.id <= upto_call)
    out: list[tuple[str, str, datetime]] = []
    for scope, name in (("user", log.user_id), ("project", log.project)):
        first = func.min(log.timestamp)
        named = conn.execute(
            select(name, first).where(new, name.is_not(None), name != "").group_by(name).having(first < before)
        )
        out += [(scope, str(key), at) for key, at in named]
    first = func.min(log.timestamp)
    models = conn.execute(
        select(log.provider, log.model, first).where(new).group_by(log.provider, log.model).having(first < before)
    )
    out += [("model", f"{provider}/{model}", at) for provider, model, at in models]
    return out


def _key_filter(scope: str, key: str):  # type: ignore[no-untyped-def]
    log = UsageRecord
    if scope == "model":
        provider, _, model = key.partition("/")
        return and_(log.model == model, log.provider == provider)
    return (log.user_id if scope == "user" else log.project) == key


def hours_of_older_keys(
    conn: Connection, call_id: int, upto_call: int, judged_from: datetime, judged_through: datetime, min_age: timedelta
) -> set[datetime]:
    """Hours a key was skipped in as young and now is old enough in, because back-dated calls moved its first
    call back: its judged hours in [new first + 14 days, old first + 14 days) that hold its calls.

    Only keys whose new calls start more than 14 days before the judged range's end are looked at, so live
    traffic costs one grouped read of the new calls.
    """
    if upto_call <= call_id:
        return set()
    log = UsageRecord
    hours: set[datetime] = set()
    for scope, key, new_first in _keys_of_new_calls(conn, call_id, upto_call, judged_through - min_age):
        where = _key_filter(scope, key)
        old_first = conn.execute(
            select(log.timestamp).where(where, log.id <= call_id).order_by(log.timestamp).limit(1)
        ).scalar()
        if old_first is None or old_first <= new_first:
            continue  # a new key (its hours are all changed hours), or no earlier than before: no hour changes age
        lo, hi = max(new_first + min_age, judged_from), min(old_first + min_age, judged_through)
        if hi <= lo:
            continue
        hour = _epoch_hour(conn)
        found = conn.execute(select(hour).distinct().where(where, log.timestamp >= lo, log.timestamp < hi)).scalars()
        hours |= {datetime.fromtimestamp(int(h), UTC) for h in found}
    return hours


@dataclass(frozen=True)
class State:
    """What passes have judged, shared by every process: hours in [judged_from, judged_through), ids seen."""

    judged_from: datetime | None = None
    judged_through: datetime | None = None
    call_id: int = 0
    correction_id: int = 0


def _name(field: str) -> str:
    return f"anomalies.{field}"


def read_state(conn: Connection) -> State:
    rows = dict(
        conn.execute(select(Setting.key, Setting.value).where(Setting.key.in_([_name(k) for k in STATE_KEYS]))).all()
    )

    def moment(field: str) -> datetime | None:
        text = rows.get(_name(field))
        return datetime.fromisoformat(text) if text else None

    return State(
        moment("judged_from"),
        moment("judged_through"),
        int(rows.get(_name("call_id")) or 0),
        int(rows.get(_name("correction_id")) or 0),
    )


def _merge(old: State, new: State) -> State:
    """States only widen and advance: two passes writing at once never undo each other."""

    def low(a: datetime | None, b: datetime | None) -> datetime | None:
        return b if a is None else a if b is None else min(a, b)

    def high(a: datetime | None, b: datetime | None) -> datetime | None:
        return b if a is None else a if b is None else max(a, b)

    return State(
        low(old.judged_from, new.judged_from),
        high(old.judged_through, new.judged_through),
        max(old.call_id, new.call_id),
        max(old.correction_id, new.correction_id),
    )


def _write_state(conn: Connection, state: State) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for field in STATE_KEYS:
        value = getattr(state, field)
        text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
        statement = dialect.insert(Setting).values(key=_name(field), value=text)
        conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": text}))


@dataclass(frozen=True)
class Found:
    """An anomaly to store (the rule's values) and whether it is late."""

    scope: str
    key: str
    hour: datetime
    spend: Decimal
    baseline: Decimal
    ratio: Decimal | None
    late: bool


def write_found(engine: Engine, found: Sequence[Found], state: State, now: datetime) -> list[int]:
    """Store anomalies once each and queue one outbox row per alert for each new one, with the state; one transaction.

    ``INSERT ... ON CONFLICT (scope, key, hour) DO NOTHING RETURNING id`` gives an id only to
    the pass that stored the anomaly first, so only that pass queues its events. Returns the new ids.
    """

    def work(conn: Connection) -> list[int]:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(AnomalyRecord)
            .on_conflict_do_nothing(index_elements=["scope", "key", "hour"])
            .returning(AnomalyRecord.id)
        )
        alerts = list(
            conn.execute(select(Alert.id).where(Alert.webhook_disabled_at.is_(None)).order_by(Alert.id)).scalars()
        )
        new: list[int] = []
        for a in found:
            made = conn.execute(
                statement,
                dict(
                    scope=a.scope,
                    key=a.key,
                    hour=a.hour,
                    spend=a.spend,
                    baseline=a.baseline,
                    ratio=None if a.ratio is None else format(a.ratio, "f"),
                    late=a.late,
                    found_at=now,
                ),
            ).scalar()
            if made is None:
                continue  # found before, by this process or another: sent then, never again
            new.append(int(made))
            for alert_id in alerts:
                conn.execute(
                    dialect.insert(BudgetEvent)
                    .values(
                        alert_id=alert_id,
                        anomaly_id=made,
                        period_start=a.hour,
                        period_end=a.hour + timedelta(hours=1),
                        threshold=0,
                        webhook_id=f"msg_{secrets.token_hex(12)}",
                        spend=a.spend,
                        amount=a.baseline,
                        late=a.late,
                        created_at=now,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["alert_id", "anomaly_id"])
                )
        _write_state(conn, _merge(read_state(conn), state))
        return new

    return run_write(engine, work)


def anomalies_since(engine: Engine, since: datetime, limit: int | None = None) -> list[AnomalyRecord]:
    """Stored anomalies of hours starting at or after ``since``, oldest hour first (newest first with a limit)."""
    query = select(AnomalyRecord).where(AnomalyRecord.hour >= since)
    if limit is None:
        query = query.order_by(AnomalyRecord.hour, AnomalyRecord.scope, AnomalyRecord.key)
    else:
        query = query.order_by(AnomalyRecord.hour.desc(), AnomalyRecord.spend.desc()).limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def anomalies_between(engine: Engine, lo: datetime, hi: datetime) -> list[AnomalyRecord]:
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(AnomalyRecord)
                .where(AnomalyRecord.hour >= lo, AnomalyRecord.hour < hi)
                .order_by(AnomalyRecord.hour, AnomalyRecord.id)
            )
        )


def add_alert(engine: Engine, url: str, secret: str, now: datetime) -> Alert:
    def work(conn: Connection) -> int:
        return int(
            conn.execute(
                insert(Alert)
                .values(webhook_url=url, webhook_secret=secret, webhook_format="standard", created_at=now)
                .returning(Alert.id)
            ).scalar_one()
        )

    alert_id = run_write(engine, work)
    with Session(engine, expire_on_commit=False) as session:
        return session.get_one(Alert, alert_id)


def list_alerts(engine: Engine) -> list[tuple[Alert, int, int]]:
    """Every alert with its events delivered and still pending."""
    delivered = func.sum(case((BudgetEvent.status == "delivered", 1), else_=0))
    pending = func.sum(case((BudgetEvent.status == PENDING, 1), else_=0))
    with Session(engine, expire_on_commit=False) as session:
        rows = session.execute(
            select(Alert, func.coalesce(delivered, 0), func.coalesce(pending, 0))
            .outerjoin(BudgetEvent, BudgetEvent.alert_id == Alert.id)
            .group_by(Alert.id)
            .order_by(Alert.id)
        ).all()
    return [(a, int(d), int(p)) for a, d, p in rows]


def remove_alert(engine: Engine, alert_id: int) -> bool:
    """Delete an alert and its outbox rows (and their attempts); False when there is none."""

    def work(conn: Connection) -> bool:
        if conn.execute(select(Alert.id).where(Alert.id == alert_id)).first() is None:
            return False
        from core.storage.budget_tables import BudgetDelivery

        events = select(BudgetEvent.id).where(BudgetEvent.alert_id == alert_id)
        conn.execute(delete(BudgetDelivery).where(BudgetDelivery.event_id.in_(events)))
        conn.execute(delete(BudgetEvent).where(BudgetEvent.alert_id == alert_id))
        conn.execute(delete(Alert).where(Alert.id == alert_id))
        return True

    return run_write(engine, work)
