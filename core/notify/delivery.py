"""Delivery: each outbox event as one HTTP POST signed as the Standard Webhooks specification says.

A sender claims due events (a short lease, taken in a write transaction: ``SELECT ...
FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), posts them,
and records every attempt. The ``webhook-id`` is the event's and never changes, so
a receiver can drop a repeat; a crash between posting and recording leaves the lease
to expire and the event is posted again with the same id. Anything but a 2xx is
retried 5 s, 5 min, 30 min, 2 h, 5 h and 10 h after each failure; a 410 turns the
budget's webhook off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from core.money import format_usd, to_text
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
TIMEOUT_SECONDS = 10.0
LEASE = timedelta(seconds=60)  # longer than any one attempt can take
CLAIM_LIMIT = 50
SECRET_PREFIX = "whsec_"
EVENT_TYPE = "budget.threshold_crossed"


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


def request_for(event: BudgetEvent, budget: Budget, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: the same id every time, a fresh timestamp and signature."""
    if budget.webhook_format == "slack":
        payload: dict[str, Any] = {"text": slack_text(event, budget)}
    else:
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer like any other non-2xx: retried


_OPENER = urllib.request.build_opener(_NoRedirect)

Sender = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status code; network failures raise ``OSError``."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


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
            .join(Budget, Budget.id == BudgetEvent.budget_id)
            .where(
                BudgetEvent.status == PENDING,
                BudgetEvent.next_attempt_at <= now,
                (BudgetEvent.claimed_until.is_(None)) | (BudgetEvent.claimed_until <= now),
                Budget.webhook_url.is_not(None),
                Budget.webhook_disabled_at.is_(None),
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


def _load(engine: Engine, event_id: int) -> tuple[BudgetEvent, Budget] | None:
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        event = session.get(BudgetEvent, event_id)
        budget = session.get(Budget, event.budget_id) if event else None
    return (event, budget) if event and budget else None


def attempt(engine: Engine, event_id: int, lease: datetime, now: datetime, send: Sender = http_post) -> str:
    """Post one claimed event and record the attempt; returns the outcome."""
    loaded = _load(engine, event_id)
    if loaded is None:
        return FAILED
    event, budget = loaded
    assert budget.webhook_url is not None
    body, headers = request_for(event, budget, now)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        status = send(budget.webhook_url, body, headers, TIMEOUT_SECONDS)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
        error = f"{type(exc).__name__}: {exc}"[:500]
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
            conn.execute(update(Budget).where(Budget.id == budget.id).values(webhook_disabled_at=now))
            conn.execute(
                update(BudgetEvent)
                .where(BudgetEvent.budget_id == budget.id, BudgetEvent.status == PENDING)
                .values(status=DISABLED, next_attempt_at=None, last_error="webhook disabled after HTTP 410")
            )

    run_write(engine, record)
    return outcome


def deliver_due(engine: Engine, now: datetime | None = None, send: Sender = http_post) -> DeliveryReport:
    """Post every event that is due now; one attempt each."""
    moment = now or now_utc()
    report = DeliveryReport()
    for event_id, lease in claim_due(engine, moment):
        outcome = attempt(engine, event_id, lease, moment, send)
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
