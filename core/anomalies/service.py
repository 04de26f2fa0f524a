"""Anomaly use cases: a detection pass, the listing, and the alert webhooks (for the CLI, the loop, the Overview).

A pass judges each complete UTC hour once (``complete_hours`` past the shared state), and again
the hours whose calls changed behind it: a back-dated import or a reprice re-judges its hour and
the same hour of the four weeks after (their baselines moved), and a key whose first call moved
back is judged in the hours it was skipped in as young. Each anomaly is stored once
(``uq_anomaly_key``) and only the pass that stored it queues its events, so two processes, a
restart or a later pass that sees more spend send nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy import Engine

from core.anomalies import store
from core.anomalies.rule import MIN_AGE, WEEK, Anomaly, anomaly_json, baseline_hours, complete_hours, judge, judged
from core.notify import delivery
from core.storage.anomaly_tables import Alert, AnomalyRecord
from core.times import now_utc

DEFAULT_DAYS = 7  # `anomalies` lists the last 7 days; a first pass judges them
LATE_AFTER = timedelta(hours=2)  # found this long after its hour started: late (one hour of slack after it ends)
FOLLOWING_WEEKS = 4  # an hour is the baseline of the same hour in the next four weeks


class AlertError(ValueError):
    """Bad alert input; the message names the field and the value."""


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def judge_hour(engine: Engine, hour: datetime) -> list[Anomaly]:
    """Every key's anomaly in one complete hour: two reads for the spends, one index endpoint per flagged key."""
    hours = [hour, *baseline_hours(hour)]
    found: list[Anomaly] = []
    with engine.connect() as conn:
        for row in store.series_rows(conn, hours) + store.entity_rows(conn, hours):
            verdict = judge(row.spend, list(row.history))
            if verdict is None:
                continue
            if judged(hour, store.first_call(conn, row.scope, row.key)):  # young keys are not judged
                found.append(Anomaly.of(row.scope, row.key, hour, verdict))
    return found


@dataclass(frozen=True)
class PassResult:
    hours: int  # hours judged by this pass
    found: int  # anomalies seen (stored before or now)
    new: int  # anomalies stored by this pass (their events queued)


def hours_to_judge(state: store.State, changed: set[datetime], now: datetime, since: datetime | None) -> set[datetime]:
    """New complete hours, hours before the judged range that ``since`` asks for, and changed judged hours."""
    through = floor_hour(now)
    if state.judged_through is None or state.judged_from is None:
        start = min(since, through - timedelta(days=DEFAULT_DAYS)) if since else through - timedelta(days=DEFAULT_DAYS)
        return set(complete_hours(start, now))
    hours = set(complete_hours(state.judged_through, now))
    if since is not None and since < state.judged_from:
        hours |= set(complete_hours(since, state.judged_from))
    for hour in changed:
        for n in range(FOLLOWING_WEEKS + 1):
            later = hour + WEEK * n
            if state.judged_from <= later < state.judged_through:
                hours.add(later)
    return hours


def run_pass(engine: Engine, now: datetime | None = None, since: datetime | None = None) -> PassResult:
    """Judge what is due (see the module docstring) and store what is found; safe to run anywhere, any time."""
    moment = now or now_utc()
    with engine.connect() as conn:
        state = store.read_state(conn)
        last_call, last_fix = store.last_ids(conn)
        changed: set[datetime] = set()
        older: set[datetime] = set()
        if state.judged_through is not None and state.judged_from is not None:
            changed = store.changed_hours(conn, state.call_id, state.correction_id, last_call, last_fix)
            older = store.hours_of_older_keys(
                conn, state.call_id, last_call, state.judged_from, state.judged_through, MIN_AGE
            )
    hours = sorted(hours_to_judge(state, changed, moment, since) | older)
    found = [a for hour in hours for a in judge_hour(engine, hour)]
    through = floor_hour(moment)
    starts = [h for h in (state.judged_from, since, hours[0] if hours else None) if h is not None]
    new_state = store.State(
        min(starts) if starts else through - timedelta(days=DEFAULT_DAYS),
        through,
        last_call,
        last_fix,
    )
    rows = [
        store.Found(a.scope, a.key, a.hour, a.spend, a.baseline, a.ratio, moment >= a.hour + LATE_AFTER) for a in found
    ]
    new = store.write_found(engine, rows, new_state, moment)
    return PassResult(len(hours), len(found), len(new))


def since_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def default_since(now: datetime | None = None) -> datetime:
    """The last 7 days: from 00:00 UTC seven days ago."""
    return since_day((now or now_utc()).astimezone(UTC).date() - timedelta(days=DEFAULT_DAYS))


def list_anomalies(engine: Engine, since: datetime | None = None, now: datetime | None = None) -> list[AnomalyRecord]:
    """Judge what is due (and the hours from ``since`` never judged), then list the stored anomalies from ``since``."""
    moment = now or now_utc()
    start = since or default_since(moment)
    run_pass(engine, moment, start)
    return store.anomalies_since(engine, start)


def latest(engine: Engine, limit: int = 10) -> list[AnomalyRecord]:
    """The most recent anomalies (the Overview's list); reads only, never judges."""
    return store.anomalies_since(engine, datetime(1970, 1, 1, tzinfo=UTC), limit)


def between(engine: Engine, lo: datetime, hi: datetime) -> list[AnomalyRecord]:
    """Stored anomalies with hours in [lo, hi) (the Overview's markers)."""
    return store.anomalies_between(engine, lo, hi)


def record_json(a: AnomalyRecord) -> dict[str, str | None]:
    """The contract's object for a stored anomaly (the values as first found, as sent)."""
    ratio = None if a.ratio is None else Decimal(a.ratio)
    return anomaly_json(Anomaly(a.scope, a.key, a.hour, a.spend, a.baseline, ratio))


@dataclass(frozen=True)
class AlertSpec:
    url: str
    secret: str | None


def validate_alert(url: object, secret: object = None) -> AlertSpec:
    """An http(s) URL and, when given, a ``whsec_`` + base64 secret; checked before anything is written."""
    text = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise AlertError(f"webhook: {url!r} is not an http(s) URL")
    key = secret.strip() if isinstance(secret, str) and secret.strip() else None
    if key is not None:
        try:
            delivery.secret_key(key)
        except delivery.SecretError as exc:
            raise AlertError(str(exc)) from None
    return AlertSpec(text, key)


@dataclass(frozen=True)
class AddedAlert:
    alert: Alert
    secret: str
    generated: bool


def add_alert(engine: Engine, spec: AlertSpec, now: datetime | None = None) -> AddedAlert:
    """Store a webhook; it receives every anomaly found from now on. A pass runs first, so anomalies
    already there (history just imported) are found before it and not sent to it."""
    moment = now or now_utc()
    run_pass(engine, moment)
    secret, generated = (spec.secret, False) if spec.secret else (delivery.new_secret(), True)
    return AddedAlert(store.add_alert(engine, spec.url, secret, moment), secret, generated)


def list_alerts(engine: Engine) -> list[tuple[Alert, int, int]]:
    return store.list_alerts(engine)


def remove_alert(engine: Engine, alert_id: object) -> None:
    text = str(alert_id).strip()
    if not text.isascii() or not text.isdigit():
        raise AlertError(f"alert: {alert_id!r} is not an alert id (see `alerts list`)")
    if not store.remove_alert(engine, int(text)):
        raise AlertError(f"alert: {text} does not exist (see `alerts list`)")
