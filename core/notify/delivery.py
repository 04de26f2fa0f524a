"""Delivery: each outbox event as one HTTP POST signed as the Standard Webhooks specification says.

A sender claims due events (a short lease, taken in a write transaction: ``SELECT ...
FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), posts them,
and records every attempt. The ``webhook-id`` is the event's and never changes, so
a receiver can drop a repeat; a crash between posting and recording leaves the lease
to expire and the event is posted again with the same id. Anything but a 2xx is
retried 5 s, 5 min, 30 min, 2 h, 5 h and 10 h after each failure; a 410 turns the
budget's webhook off. An outbox row of an anomaly (``alert_id`` and ``anomaly_id`` set) goes
to its alert's webhook as ``anomaly.detected``, by the same claims, retries and signatures.
Each attempt ends within ``TIMEOUT_SECONDS``, whole (connect, send, every byte of the answer),
well inside the lease; events for different URLs are posted concurrently, so one slow or
broken receiver holds back no one else's alerts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from core.money import format_usd, to_text
from core.notify import targets
from core.storage.anomaly_tables import Alert, AnomalyRecord
from core.storage.budget_tables import DELIVERED, DISABLED, FAILED, PENDING, Budget, BudgetDelivery, BudgetEvent
from core.storage.engine import run_write
from core.times import now_utc

RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
TIMEOUT_SECONDS = 15.0  # one whole attempt: connect, send, the answer's every byte
LEASE = timedelta(seconds=60)  # longer than any one attempt can take; renewed between attempts
MAX_PARALLEL_URLS = 8
CLAIM_LIMIT = 50
SECRET_PREFIX = "whsec_"
EVENT_TYPE = "budget.threshold_crossed"
ANOMALY_EVENT_TYPE = "anomaly.detected"


class SecretError(ValueError):
    """A webhook secret that is not ``whsec_`` followed by base64."""


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after ``whsec_``."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise SecretError(f"secret: {secret!r} does not start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (ValueError, TypeError):
        raise SecretError(f"secret: {secret!r} is not {SECRET_PREFIX} followed by base64") from None
    if len(key) < 16:
        raise SecretError(f"secret: {secret!r} holds {len(key)} bytes; at least 16 are needed")
    return key


def new_secret() -> str:
    """``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed by the decoded secret."""
    signed = msg_id.encode() + b"." + str(int(timestamp)).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def event_payload(event: BudgetEvent, budget: Budget) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "budget_id": budget.id,
            "budget_name": budget.name,
            "scope": budget.scope,
            "amount": to_text(event.amount),
            "currency": budget.currency,
            "period": budget.period,
            "tz": budget.tz,
            "period_start": event.period_start.isoformat().replace("+00:00", "Z"),
            "period_end": event.period_end.isoformat().replace("+00:00", "Z"),
            "threshold": event.threshold,
            "spend": to_text(event.spend),
            "late": event.late,
            **({"subject": event.subject} if budget.scope_kind == "each" else {}),
        },
    }


def slack_text(event: BudgetEvent, budget: Budget) -> str:
    late = " (found after the period closed)" if event.late else ""
    who = f" for {event.subject}" if budget.scope_kind == "each" else ""
    return (
        f":warning: Budget *{budget.name}* ({budget.scope}){who} crossed {event.threshold}%{late}: "
        f"{format_usd(event.spend)} of {format_usd(event.amount)} this {budget.period} "
        f"(from {event.period_start:%Y-%m-%d %H:%M} UTC)."
    )


def _cents_text(amount: Any) -> str:
    """An exact amount with at least cents (``31.40``, ``0.0025``), as the anomaly contract prints money."""
    whole, _, fraction = to_text(amount).partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def anomaly_payload(event: BudgetEvent, anomaly: AnomalyRecord) -> dict[str, Any]:
    """``anomaly.detected`` with the contract's six keys, the values as the anomaly was first found."""
    return {
        "type": ANOMALY_EVENT_TYPE,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "scope": anomaly.scope,
            "key": anomaly.key,
            "hour": anomaly.hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "spend": _cents_text(anomaly.spend),
            "baseline": _cents_text(anomaly.baseline),
            "ratio": anomaly.ratio,
        },
    }


def request_for(
    event: BudgetEvent, budget: Budget | Alert, now: datetime, anomaly: AnomalyRecord | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: the same id every time, a fresh timestamp and signature."""
    if anomaly is not None:
        payload: dict[str, Any] = anomaly_payload(event, anomaly)
    elif isinstance(budget, Budget) and budget.webhook_format == "slack":
        payload = {"text": slack_text(event, budget)}
    else:
        assert isinstance(budget, Budget)
        payload = event_payload(event, budget)
    body = json.dumps(payload, separators=(",", ":")).encode()
    stamp = int(now.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": "Spendboard-Budgets/1",
        "webhook-id": event.webhook_id,
        "webhook-timestamp": str(stamp),
    }
    if budget.webhook_secret:
        headers["webhook-signature"] = sign(budget.webhook_secret, event.webhook_id, stamp, body)
    return body, headers


Sender = Callable[[str, bytes, dict[str, str], float], int]
log = logging.getLogger(__name__)


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, while Host and TLS name the URL's host."""

    def __init__(self, target: targets.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target
        self.default_port = 443 if target.scheme == "https" else 80  # Host: without the port when it is the default

    def connect(self) -> None:
        sock = socket.create_connection((self.target.address, self.target.port), self.timeout)
        if self.target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.target.host)
        self.sock = sock


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status code, all within ``timeout`` seconds; anything else raises.

    The deadline is for the whole attempt, not per read: a receiver dripping one byte at a
    time is cut off when it passes. Redirects are not followed (a non-2xx like any other).
    """
    target = targets.resolve(url)
    conn = _PinnedConnection(target, timeout)
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, cut_off)
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(1024)
        if expired.is_set():  # cut off mid-answer: what was read is not an answer
            raise TimeoutError(f"timed out: no complete answer within {timeout:g} s")
        return int(response.status)
    except Exception as exc:
        if expired.is_set() and not isinstance(exc, TimeoutError):
            raise TimeoutError(f"timed out: no complete answer within {timeout:g} s") from None
        raise
    finally:
        timer.cancel()
        conn.close()


def shown_error(error: str | None) -> str | None:
    """A delivery error as anyone who can open the page sees it: the kind, no address or port."""
    if error is None:
        return None
    if error.startswith("HTTP "):
        return error.split(" ", 2)[0] + " " + error.split(" ", 2)[1]
    if "TargetError" in error:
        return "webhook target refused"
    if "Timeout" in error or "timed out" in error:
        return "no answer in time"
    return "could not deliver"


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0

    @property
    def attempts(self) -> int:
        return self.delivered + self.retrying + self.failed + self.disabled


def claim_due(engine: Engine, now: datetime, limit: int = CLAIM_LIMIT) -> list[tuple[int, datetime]]:
    """Take a lease on due events (pending, due, not leased by another sender); returns (id, lease end)."""
    lease = now + LEASE
    with engine.connect() as conn:  # a read first: no write lock every few seconds when nothing is due
        due = conn.execute(
            select(BudgetEvent.id)
            .where(
                BudgetEvent.status == PENDING,
                BudgetEvent.next_attempt_at <= now,
                (BudgetEvent.claimed_until.is_(None)) | (BudgetEvent.claimed_until <= now),
            )
            .limit(1)
        ).first()
    if due is None:
        return []

    def work(conn: Connection) -> list[tuple[int, datetime]]:
        query = (
            select(BudgetEvent.id)
            .outerjoin(Budget, Budget.id == BudgetEvent.budget_id)
            .outerjoin(Alert, Alert.id == BudgetEvent.alert_id)  # an anomaly's row goes to its alert
            .where(
                BudgetEvent.status == PENDING,
                BudgetEvent.next_attempt_at <= now,
                (BudgetEvent.claimed_until.is_(None)) | (BudgetEvent.claimed_until <= now),
                or_(
                    and_(Budget.webhook_url.is_not(None), Budget.webhook_disabled_at.is_(None)),
                    and_(Alert.id.is_not(None), Alert.webhook_disabled_at.is_(None)),
                ),
            )
            .order_by(BudgetEvent.next_attempt_at, BudgetEvent.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=BudgetEvent, skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if ids:
            conn.execute(update(BudgetEvent).where(BudgetEvent.id.in_(ids)).values(claimed_until=lease))
        return [(i, lease) for i in ids]

    return run_write(engine, work)


def _load(engine: Engine, event_id: int) -> tuple[BudgetEvent, Budget | Alert, AnomalyRecord | None] | None:
    """The event, where it goes (its budget, or its alert), and the anomaly it tells of (None for a budget's)."""
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        event = session.get(BudgetEvent, event_id)
        if event is None:
            return None
        if event.alert_id is not None:
            alert = session.get(Alert, event.alert_id)
            anomaly = session.get(AnomalyRecord, event.anomaly_id) if event.anomaly_id is not None else None
            return (event, alert, anomaly) if alert and anomaly else None
        budget = session.get(Budget, event.budget_id) if event.budget_id is not None else None
    return (event, budget, None) if budget else None


def attempt(engine: Engine, event_id: int, lease: datetime, now: datetime, send: Sender = http_post) -> str:
    """Post one claimed event and record the attempt; returns the outcome."""
    loaded = _load(engine, event_id)
    if loaded is None:
        return FAILED
    event, budget, anomaly = loaded
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        if budget.webhook_url is None:
            raise targets.TargetError("webhook: the budget or alert has no webhook URL any more")
        body, headers = request_for(event, budget, now, anomaly)
        status = send(budget.webhook_url, body, headers, TIMEOUT_SECONDS)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except Exception as exc:  # noqa: BLE001 - any failure is this attempt's error, retried with back-off
        error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:500]
    elapsed = int((time.perf_counter() - started) * 1000)
    number = event.attempts + 1
    if error is None:
        outcome, next_at = DELIVERED, None
    elif status == 410:
        outcome, next_at = DISABLED, None
    elif number <= len(RETRY_SCHEDULE):
        outcome, next_at = "retry", now + RETRY_SCHEDULE[number - 1]
    else:
        outcome, next_at = FAILED, None

    def record(conn: Connection) -> None:
        conn.execute(
            insert(BudgetDelivery).values(
                event_id=event_id,
                attempt=number,
                attempted_at=now,
                status_code=status,
                outcome=outcome,
                error=error,
                duration_ms=elapsed,
                next_attempt_at=next_at,
            )
        )
        conn.execute(
            update(BudgetEvent)
            .where(BudgetEvent.id == event_id, BudgetEvent.claimed_until == lease)
            .values(
                attempts=number,
                status=PENDING if outcome == "retry" else outcome,
                next_attempt_at=next_at,
                claimed_until=None,
                delivered_at=now if outcome == DELIVERED else None,
                last_error=error,
            )
        )
        if outcome == DISABLED:
            target = type(budget)  # the budget's webhook, or the alert's
            owner = BudgetEvent.alert_id if isinstance(budget, Alert) else BudgetEvent.budget_id
            conn.execute(update(target).where(target.id == budget.id).values(webhook_disabled_at=now))
            conn.execute(
                update(BudgetEvent)
                .where(owner == budget.id, BudgetEvent.status == PENDING)
                .values(status=DISABLED, next_attempt_at=None, last_error="webhook disabled after HTTP 410")
            )

    run_write(engine, record)
    return outcome


def _renew(engine: Engine, event_id: int, lease: datetime, until: datetime) -> bool:
    """Extend this sender's lease before a later attempt; False when another sender holds it now."""

    def work(conn: Connection) -> bool:
        done = conn.execute(
            update(BudgetEvent)
            .where(BudgetEvent.id == event_id, BudgetEvent.claimed_until == lease)
            .values(claimed_until=until)
        )
        return done.rowcount == 1

    return run_write(engine, work)


def _urls(engine: Engine, ids: list[int]) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(BudgetEvent.id, Budget.webhook_url)
            .join(Budget, Budget.id == BudgetEvent.budget_id)
            .where(BudgetEvent.id.in_(ids))
        ).all()
    return {row.id: row.webhook_url or "" for row in rows}


def deliver_due(engine: Engine, now: datetime | None = None, send: Sender = http_post) -> DeliveryReport:
    """Post every event that is due now; one attempt each, URLs in parallel, each URL's events in order."""
    moment = now or now_utc()
    report = DeliveryReport()
    claimed = claim_due(engine, moment)
    if not claimed:
        return report
    urls = _urls(engine, [i for i, _ in claimed])
    groups: dict[str, list[tuple[int, datetime]]] = {}
    for event_id, lease in claimed:
        groups.setdefault(urls.get(event_id, ""), []).append((event_id, lease))
    clock = time.monotonic()
    margin = (TIMEOUT_SECONDS + 5) * 2

    def post_group(events: list[tuple[int, datetime]]) -> list[str]:
        outcomes = []
        for event_id, lease in events:
            elapsed = time.monotonic() - clock
            if elapsed + margin > LEASE.total_seconds():  # the lease would end mid-attempt: extend it first
                renewed = moment + timedelta(seconds=elapsed) + LEASE
                if not _renew(engine, event_id, lease, renewed):
                    continue
                lease = renewed
            try:
                outcomes.append(attempt(engine, event_id, lease, moment, send))
            except Exception as exc:  # noqa: BLE001 - recording failed: the lease expires and it is retried
                log.warning("recording delivery attempt of event %s failed: %s", event_id, exc)
        return outcomes

    if len(groups) == 1:
        results = [post_group(next(iter(groups.values())))]
    else:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_URLS, len(groups))) as pool:
            results = list(pool.map(post_group, groups.values()))
    for outcomes in results:
        for outcome in outcomes:
            if outcome == DELIVERED:
                report.delivered += 1
            elif outcome == "retry":
                report.retrying += 1
            elif outcome == DISABLED:
                report.disabled += 1
            else:
                report.failed += 1
    return report


def resend(engine: Engine, event_id: int, now: datetime | None = None) -> bool:
    """Queue an event again now (admin): same webhook-id; turns a 410-disabled webhook back on."""
    moment = now or now_utc()

    def work(conn: Connection) -> bool:
        budget_id = conn.execute(select(BudgetEvent.budget_id).where(BudgetEvent.id == event_id)).scalar()
        url = conn.execute(select(Budget.webhook_url).where(Budget.id == budget_id)).scalar()
        if budget_id is None or not url:
            return False
        conn.execute(update(Budget).where(Budget.id == budget_id).values(webhook_disabled_at=None))
        conn.execute(
            update(BudgetEvent)
            .where(BudgetEvent.id == event_id)
            .values(status=PENDING, next_attempt_at=moment, claimed_until=None, attempts=0)
        )
        return True

    return run_write(engine, work)
