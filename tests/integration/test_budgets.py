"""Budgets and alerts (issue 13): periods, exactly-once events, signed delivery with retries, the CLI.

Calls go to a provider without a price, so each costs the estimate of USD 1 per 1M
tokens: ``usd("0.5")`` is half a dollar, exactly. Webhooks go to a local receiver
that verifies each signature with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from budget_receiver import receiver
from sqlalchemy import Engine, func, select

from core.budgets import detect, service
from core.budgets.periods import period_of, periods_between
from core.notify import delivery
from core.recording.calls import Call, make_call, record_batch, record_usage
from core.storage.budget_tables import (
    DELIVERED,
    DISABLED,
    FAILED,
    NO_WEBHOOK,
    PENDING,
    Budget,
    BudgetDelivery,
    BudgetEvent,
)
from core.storage.engine import make_engine

REPO = Path(__file__).resolve().parents[2]
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def check_after_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection after recording runs at most once a second in production; here after every batch."""
    monkeypatch.setattr(detect, "MIN_INTERVAL_SECONDS", 0.0)
    monkeypatch.setenv("SPENDBOARD_WEBHOOK_ALLOW_PRIVATE", "1")  # the receivers here listen on 127.0.0.1


def usd(amount: str, at: datetime | None = None, provider: str = "acme", **kw: object) -> Call:
    """A call that costs exactly ``amount`` dollars (the $1 per 1M tokens estimate)."""
    tokens = int(Decimal(amount) * 1_000_000)
    moment = at or datetime.now(UTC) - timedelta(minutes=1)
    return make_call(provider, "model-x", tokens, 0, timestamp=moment, **kw)  # type: ignore[arg-type]


def add(engine: Engine, name: str = "team", amount: str = "1", period: str = "month", *, created=LONG_AGO, **kw):  # type: ignore[no-untyped-def]
    spec = service.validate(name, amount, period, **kw)
    return service.add_budget(engine, spec, now=created)


def events(engine: Engine) -> list[BudgetEvent]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(BudgetEvent).order_by(BudgetEvent.period_start, BudgetEvent.threshold)))


def keys(engine: Engine) -> list[tuple[datetime, int]]:
    return [(e.period_start, e.threshold) for e in events(engine)]


# --- signing ---------------------------------------------------------------------------------


# --- periods ---------------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# Each case: a budget, and two instants one second apart on either side of a period boundary.
BOUNDARIES = [
    ("month", "UTC", utc(2026, 4, 1)),
    ("week", "UTC", utc(2026, 3, 30)),
    ("day", "UTC", utc(2026, 3, 11)),
    ("day", "Europe/Berlin", utc(2026, 3, 29, 22)),  # the end of the 23-hour day
    ("week", "Europe/Berlin", utc(2026, 3, 29, 22)),
    ("month", "Asia/Kolkata", utc(2026, 3, 31, 18, 30)),
    ("day", "Asia/Kolkata", utc(2026, 3, 10, 18, 30)),
]


@pytest.mark.parametrize(("period", "tz", "boundary"), BOUNDARIES)
def test_calls_count_in_the_period_of_their_timestamp(engine: Engine, period: str, tz: str, boundary: datetime) -> None:
    add(engine, amount="1", period=period, tz=tz, thresholds="100")
    before, after = boundary - timedelta(seconds=1), boundary
    # 60 cents on each side: neither period reaches 100%
    record_batch(engine, [usd("0.6", before), usd("0.6", after)])
    assert detect.reconcile(engine) == 0 and events(engine) == []
    # 40 more cents just after the boundary: only the later period reaches it
    record_batch(engine, [usd("0.4", after + timedelta(seconds=1))])
    assert keys(engine) == [(boundary, 100)]
    # and 40 just before it: the earlier period too
    record_batch(engine, [usd("0.4", before)])
    assert keys(engine) == [(period_of(before, period, ZoneInfo(tz)).start, 100), (boundary, 100)]


# --- exactly once ----------------------------------------------------------------------------


def test_one_call_crossing_three_thresholds_gives_three_events_and_none_later(engine: Engine) -> None:
    add(engine, amount="10", period="month", tz="UTC", created=datetime.now(UTC) - timedelta(days=40))
    record_batch(engine, [usd("12.5")])
    found = events(engine)
    assert [e.threshold for e in found] == [50, 80, 100]
    assert {e.spend for e in found} == {Decimal("12.5")}
    assert all(not e.late and e.status == NO_WEBHOOK for e in found)
    record_batch(engine, [usd("1"), usd("2")])
    assert detect.reconcile(engine) == 0
    assert len(events(engine)) == 3


def test_ten_thousand_calls_past_a_threshold_still_one_event(engine: Engine) -> None:
    add(engine, amount="1", period="month", thresholds="50", created=datetime.now(UTC) - timedelta(days=40))
    record_usage(engine, usd("0.5"))
    assert len(events(engine)) == 1
    now = datetime.now(UTC) - timedelta(minutes=2)
    tiny = [usd("0.000001", now) for _ in range(10_000)]
    for start in range(0, len(tiny), 100):
        record_batch(engine, tiny[start : start + 100])
    for call in tiny[:20]:
        record_usage(engine, call)
    assert detect.reconcile(engine) == 0
    assert len(events(engine)) == 1


RECORDER = """
import sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
import core.budgets  # every entrypoint (CLI, server, app, core.tracking) registers budget detection on recording
from core.storage.engine import make_engine
from core.recording.calls import make_call, record_batch

url, go, tag = sys.argv[1:4]
engine = make_engine(url)
while not Path(go).exists():
    time.sleep(0.005)
now = datetime.now(UTC) - timedelta(minutes=1)
for i in range(40):
    record_batch(engine, [make_call("acme", "model-x", 50_000, 0, timestamp=now, request_id=f"{tag}-{i}")])
"""


def test_two_processes_recording_at_once_give_one_event_per_threshold(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    add(engine, amount="1", period="month", created=datetime.now(UTC) - timedelta(days=40))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", RECORDER, db_url, str(go), tag], env=env, cwd=REPO)
        for tag in ("a", "b")
    ]
    time.sleep(1.0)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    # 80 calls of 5 cents: $4, four times the amount; each process alone crossed every threshold
    assert service.list_status(engine)[0].spend == Decimal(4)
    assert [e.threshold for e in events(engine)] == [50, 80, 100]
    assert detect.reconcile(engine) == 0


def test_back_dated_call_into_a_closed_period_gives_one_late_event(engine: Engine) -> None:
    now = datetime.now(UTC)
    add(engine, amount="1", period="day", thresholds="100", created=now - timedelta(days=10))
    three_days_ago = now - timedelta(days=3)
    record_batch(engine, [usd("0.7", three_days_ago)])
    assert events(engine) == []
    record_batch(engine, [usd("0.3", three_days_ago)])
    (event,) = events(engine)
    assert event.late and event.threshold == 100
    assert event.period_start == period_of(three_days_ago, "day", ZoneInfo("UTC")).start
    record_batch(engine, [usd("0.3", three_days_ago)])
    assert detect.reconcile(engine) == 0 and len(events(engine)) == 1


def test_periods_before_the_budget_existed_are_not_alerted(engine: Engine) -> None:
    now = datetime.now(UTC)
    add(engine, amount="1", period="day", thresholds="100", created=now)
    record_batch(engine, [usd("5", now - timedelta(days=3))])
    assert detect.reconcile(engine) == 0 and events(engine) == []


def test_price_driven_reprice_that_crosses_a_threshold(engine: Engine) -> None:
    from core.pricing.edits import PriceEdit, save_price
    from core.recording.audit import reprice_estimated

    add(engine, amount="1", period="month", thresholds="100", scope="provider:acme", created=LONG_AGO)
    at = datetime.now(UTC) - timedelta(hours=1)
    record_batch(engine, [usd("0.5", at)])  # priced at the estimate: 50 cents
    mark = detect.Watermark()
    assert detect.reconcile_changes(engine, mark) == 0 and events(engine) == []
    save_price(engine, PriceEdit("acme", "model-x", "3", "3", effective_from=utc(2000, 1, 1)))
    result = reprice_estimated(engine)
    assert result.repriced == 1 and result.cost_after == Decimal("1.5")
    # the running server's pass sees the reprice (a new correction) and finds the crossing
    assert detect.reconcile_changes(engine, mark) == 1
    (event,) = events(engine)
    assert event.threshold == 100 and event.spend == Decimal("1.5")
    assert detect.reconcile(engine) == 0


def test_scope_counts_only_matching_calls(engine: Engine) -> None:
    created = datetime.now(UTC) - timedelta(days=40)
    add(engine, "acme", amount="1", thresholds="100", scope="provider:acme", created=created)
    add(engine, "alice", amount="1", thresholds="100", scope="user:alice", created=created)
    add(engine, "all", amount="3", thresholds="100", created=created)
    record_batch(engine, [usd("0.9", user="alice"), usd("0.9", provider="other", user="bob")])
    assert events(engine) == []
    record_batch(engine, [usd("0.2", provider="other", user="alice")])  # alice reaches $1.10
    names = {s.budget.name: s for s in service.list_status(engine)}
    assert names["acme"].spend == Decimal("0.9") and names["alice"].spend == Decimal("1.1")
    assert names["all"].spend == Decimal("2")
    assert [e.budget_id for e in events(engine)] == [names["alice"].budget.id]


# --- delivery --------------------------------------------------------------------------------


def _webhook_budget(engine: Engine, url: str, secret: str = SPEC_SECRET, **kw):  # type: ignore[no-untyped-def]
    created = datetime.now(UTC) - timedelta(days=40)
    return add(engine, amount="1", thresholds="100", webhook_url=url, secret=secret, created=created, **kw)


def test_event_is_signed_and_shaped_as_designed(engine: Engine) -> None:
    with receiver() as hook:
        hook.secret = SPEC_SECRET
        added = _webhook_budget(engine, hook.url, scope="project:web")
        record_batch(engine, [usd("1.25", project="web"), usd("5", project="other")])
        result = service.check(engine)
        assert result.report.delivered == 1
        (got,) = hook.received
    assert got.verified
    body = got.payload
    assert body["type"] == "budget.threshold_crossed"
    data = body["data"]
    assert data["budget_id"] == added.budget.id and data["budget_name"] == "team" and data["scope"] == "project:web"
    assert (data["amount"], data["spend"], data["threshold"], data["currency"]) == ("1", "1.25", 100, "USD")
    period = period_of(datetime.now(UTC), "month", ZoneInfo("UTC"))
    assert data["period_start"] == period.start.isoformat().replace("+00:00", "Z")
    assert data["period_end"] == period.end.isoformat().replace("+00:00", "Z")
    (event,) = events(engine)
    assert got.headers["webhook-id"] == event.webhook_id and event.status == DELIVERED


def test_restart_between_crossing_and_delivery_delivers_once(engine: Engine, db_url: str) -> None:
    with receiver() as hook:
        hook.secret = SPEC_SECRET
        _webhook_budget(engine, hook.url)
        record_batch(engine, [usd("2")])  # crossed and written to the outbox; the process "dies" here
        assert [e.status for e in events(engine)] == [PENDING]
        engine.dispose()
        detect.forget_budgets()
        restarted = make_engine(db_url)
        try:
            assert service.check(restarted).report.delivered == 1
            assert service.check(restarted).report.attempts == 0
            assert service.check(restarted, now=datetime.now(UTC) + timedelta(hours=1)).report.attempts == 0
        finally:
            restarted.dispose()
        assert len(hook.received) == 1 and hook.received[0].verified


def test_a_sender_that_died_after_claiming_leaves_the_event_to_the_next(engine: Engine) -> None:
    with receiver() as hook:
        hook.secret = SPEC_SECRET
        _webhook_budget(engine, hook.url)
        record_batch(engine, [usd("2")])
        now = datetime.now(UTC)
        assert len(delivery.claim_due(engine, now)) == 1  # claimed, then the sender crashed
        assert delivery.deliver_due(engine, now + timedelta(seconds=10)).attempts == 0  # leased
        assert delivery.deliver_due(engine, now + delivery.LEASE + timedelta(seconds=1)).delivered == 1
        assert len(hook.received) == 1


def test_503_then_200_is_delivered_on_retry_with_the_same_webhook_id(engine: Engine) -> None:
    with receiver() as hook:
        hook.secret = SPEC_SECRET
        hook.answers = [503]
        _webhook_budget(engine, hook.url)
        record_batch(engine, [usd("2")])
        t0 = datetime.now(UTC)
        assert service.check(engine, now=t0).report.retrying == 1
        (event,) = events(engine)
        assert event.status == PENDING and event.next_attempt_at == t0 + timedelta(seconds=5)
        assert event.last_error == "HTTP 503"
        assert service.check(engine, now=t0 + timedelta(seconds=4)).report.attempts == 0  # not due yet
        assert service.check(engine, now=t0 + timedelta(seconds=5)).report.delivered == 1
        first, second = hook.received
    assert first.status == 503 and second.status == 200
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.webhook_id
    assert first.verified and second.verified
    assert first.body == second.body
    outcomes = [(d.attempt, d.status_code, d.outcome) for d in service.attempts_of(engine, event.id)]
    assert outcomes == [(1, 503, "retry"), (2, 200, DELIVERED)]


def test_retry_schedule_then_failed(engine: Engine) -> None:
    _webhook_budget(engine, "http://127.0.0.1:9/nothing-listens")
    record_batch(engine, [usd("2")])
    sent: list[str] = []

    def refuse(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        sent.append(headers["webhook-id"])
        raise ConnectionRefusedError("refused")

    t = datetime.now(UTC)
    gaps = []
    for _ in range(7):
        assert delivery.deliver_due(engine, t, refuse).attempts == 1
        (event,) = events(engine)
        if event.next_attempt_at is None:
            break
        gaps.append(event.next_attempt_at - t)
        assert delivery.deliver_due(engine, event.next_attempt_at - timedelta(seconds=1), refuse).attempts == 0
        t = event.next_attempt_at
    assert gaps == list(delivery.RETRY_SCHEDULE)
    assert event.status == FAILED and event.attempts == 7 and "ConnectionRefusedError" in (event.last_error or "")
    assert len(set(sent)) == 1 and len(sent) == 7


def test_410_disables_the_webhook(engine: Engine) -> None:
    with receiver() as hook:
        hook.answers = [410]
        added = _webhook_budget(engine, hook.url)
        record_batch(engine, [usd("2")])
        assert service.check(engine).report.disabled == 1
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            assert session.get_one(Budget, added.budget.id).webhook_disabled_at is not None
        assert [e.status for e in events(engine)] == [DISABLED]
        # an admin's resend turns it back on and sends the same event
        (event,) = events(engine)
        assert service.resend(engine, event.id).delivered == 1
        assert hook.received[0].headers["webhook-id"] == hook.received[1].headers["webhook-id"]


def test_slack_format_sends_text(engine: Engine) -> None:
    with receiver() as hook:
        _webhook_budget(engine, hook.url, webhook_format="slack")
        record_batch(engine, [usd("2")])
        assert service.check(engine).report.delivered == 1
    payload = hook.received[0].payload
    assert list(payload) == ["text"] and "team" in payload["text"] and "100%" in payload["text"]


def test_unreachable_receiver_times_out_and_is_retried(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.5)
    try:
        _webhook_budget(engine, f"http://127.0.0.1:{listener.getsockname()[1]}/slow")
        record_batch(engine, [usd("2")])
        assert service.check(engine).report.retrying == 1
        (event,) = events(engine)
        assert "timed out" in (event.last_error or "").lower()
    finally:
        listener.close()


# --- list, projection ------------------------------------------------------------------------


def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):  # type: ignore[no-untyped-def]
    from core.cli.main import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_add_list_check(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    with receiver() as hook:
        code, out, err = run_cli(
            db_url, monkeypatch, capsys, "budgets", "add", "--name", "web", "--amount", "2.50", "--period", "week",
            "--scope", "project:web", "--tz", "Europe/Berlin", "--webhook", hook.url, "--json",
        )  # fmt: skip
        assert code == 0, err
        added = json.loads(out)
        assert added["secret"].startswith("whsec_") and added["thresholds"] == [50, 80, 100]
        hook.secret = added["secret"]
        record_batch(engine, [usd("2", project="web"), usd("3", user="web")])
        code, out, err = run_cli(db_url, monkeypatch, capsys, "budgets", "list", "--json")
        assert code == 0, err
        (row,) = json.loads(out)["budgets"]
        assert {k: row[k] for k in ("name", "amount", "spend", "percent")} == {
            "name": "web",
            "amount": "2.5",
            "spend": "2",
            "percent": "80",
        }
        period = period_of(datetime.now(UTC), "week", ZoneInfo("Europe/Berlin"))
        assert row["period_start"] == period.start.isoformat().replace("+00:00", "Z")
        assert row["period_end"] == period.end.isoformat().replace("+00:00", "Z")
        assert "projected" in row and row["crossed"] == [50, 80]
        code, out, err = run_cli(db_url, monkeypatch, capsys, "budgets", "check", "--json")
        assert code == 0, err
        assert json.loads(out) == {
            "new_events": 0,
            "new_anomalies": 0,
            "delivered": 2,
            "retrying": 0,
            "failed": 0,
            "disabled": 0,
        }
        assert [r.verified for r in hook.received] == [True, True]
        code, out, err = run_cli(db_url, monkeypatch, capsys, "budgets", "list")
        assert code == 0 and "web" in out


BAD = [
    (["--amount", "0"], "amount"),
    (["--amount", "-5"], "amount"),
    (["--amount", "abc"], "amount"),
    (["--amount", "NaN"], "amount"),
    (["--period", "year"], "period"),
    (["--tz", "Mars/Olympus"], "tz"),
    (["--thresholds", "0"], "thresholds"),
    (["--thresholds", "1001"], "thresholds"),
    (["--thresholds", "50,50"], "thresholds"),
    (["--thresholds", "50,x"], "thresholds"),
    (["--thresholds", "12.5"], "thresholds"),
    (["--scope", "team:x"], "scope"),
    (["--scope", "provider:"], "scope"),
    (["--webhook", "ftp://example.com/x"], "webhook"),
    (["--webhook", "example.com/x"], "webhook"),
    (["--webhook", "javascript:alert(1)"], "webhook"),
    (["--webhook", "https://example.com/x", "--secret", "whsec_%%%"], "secret"),
    (["--webhook", "https://example.com/x", "--secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "secret"),
    (["--secret", SPEC_SECRET], "secret"),
    (["--webhook", "https://example.com/x", "--format", "teams"], "format"),
    (["--name", " "], "name"),
]


@pytest.mark.parametrize(("extra", "field"), BAD)
def test_cli_bad_input_names_the_field_and_writes_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys, extra: list[str], field: str
) -> None:  # type: ignore[no-untyped-def]
    args = {"--name": "team", "--amount": "10", "--period": "month"}
    rest: list[str] = []
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[extra[i]] = extra[i + 1]
        else:
            rest += extra[i : i + 2]
    argv = ["budgets", "add", *[x for kv in args.items() for x in kv], *rest]
    code, out, err = run_cli(db_url, monkeypatch, capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {field}:"), err
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Budget)).scalar_one() == 0
    finally:
        engine.dispose()


def test_duplicate_name_is_refused(engine: Engine) -> None:
    add(engine)
    with pytest.raises(service.BudgetError, match="^name: 'team' is already a budget"):
        add(engine)


def test_no_budgets_costs_one_cached_lookup(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = detect.load_budgets
    # only this engine's: a budget worker started by an earlier page test may poll its own database
    monkeypatch.setattr(
        detect, "load_budgets", lambda e: (calls.append(1) if e.url == engine.url else None) or original(e)
    )
    detect.forget_budgets()
    for _ in range(5):
        record_batch(engine, [usd("0.01")])
    assert len(calls) == 1
    assert len(BudgetDelivery.__table__.columns) > 0


def test_detection_sum_equals_the_raw_sum_of_the_calls(engine: Engine) -> None:
    """A budget's spend per period (from the roll-ups) equals the raw sum of its calls to the last pico-dollar."""
    import random

    from sqlalchemy import func, select

    from core.budgets.spend import spend_in
    from core.storage.tables import UsageRecord

    rng = random.Random(5)
    now = datetime.now(UTC)
    calls = [
        make_call(
            rng.choice(["acme", "openai", "huggingface"]),
            rng.choice(["gpt-4o", "model-x", "openai/gpt-oss-120b:groq"]),
            rng.randrange(1, 50_000),
            rng.randrange(0, 5_000),
            user=rng.choice([None, "alice", "bob"]),
            project=rng.choice([None, "web", "batch"]),
            timestamp=now - timedelta(minutes=rng.randrange(1, 60 * 24 * 40)),
        )
        for _ in range(600)
    ]
    record_batch(engine, calls)
    scopes = ["all", "provider:acme", "model:gpt-4o", "user:alice", "project:web", "project:none-such"]
    for i, scope in enumerate(scopes):
        for period, tz in [("day", "Asia/Kolkata"), ("week", "Europe/Berlin"), ("month", "UTC")]:
            budget = add(engine, f"b{i}-{period}", amount="1000", period=period, tz=tz, scope=scope).budget
            kind, _, value = scope.partition(":")
            column = {
                "provider": UsageRecord.provider,
                "model": UsageRecord.model,
                "user": UsageRecord.user_id,
                "project": UsageRecord.project,
            }.get(kind)
            for p in periods_between(now - timedelta(days=40), now, period, ZoneInfo(tz)):
                query = select(func.coalesce(func.sum(UsageRecord.cost_total), 0)).where(
                    UsageRecord.timestamp >= p.start, UsageRecord.timestamp < p.end
                )
                if column is not None:
                    query = query.where(column == value)
                with engine.connect() as conn:
                    raw = Decimal(conn.execute(query).scalar_one())
                assert spend_in(engine, budget, p.start, p.end) == raw, (scope, period, p.start)


def test_detection_after_recording_is_throttled_but_never_lost(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the interval a batch only marks its periods; a timer (or the next batch, or exit) checks them."""
    monkeypatch.setattr(detect, "MIN_INTERVAL_SECONDS", 0.5)
    add(engine, amount="1", thresholds="50,100", created=datetime.now(UTC) - timedelta(days=40))
    record_batch(engine, [usd("0.6")])  # checked at once: 50%
    assert [e.threshold for e in events(engine)] == [50]
    record_batch(engine, [usd("0.6")])  # within the interval: deferred
    assert [e.threshold for e in events(engine)] == [50]
    deadline = time.monotonic() + 10
    while len(events(engine)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.threshold for e in events(engine)] == [50, 100]
    record_batch(engine, [usd("5", datetime.now(UTC) - timedelta(days=33))])  # last month, deferred
    assert detect.flush(engine) == 2  # what exit does too
    assert len(events(engine)) == 4


def test_the_running_server_delivers_within_seconds(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.budgets import worker

    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    assert worker.start_worker(engine) is None  # switched off
    monkeypatch.delenv("SPENDBOARD_BUDGET_WORKER")
    with receiver() as hook:
        hook.secret = SPEC_SECRET
        _webhook_budget(engine, hook.url)
        thread = worker.start_worker(engine, interval=0.2)
        try:
            assert thread is not None and worker.start_worker(engine, interval=0.2) is thread  # once per database
            monkeypatch.setattr(detect, "MIN_INTERVAL_SECONDS", 3600.0)  # recording leaves it to the server
            record_batch(engine, [usd("0.3")])  # the first pass of the process runs now: below every threshold
            record_batch(engine, [usd("2")])  # deferred for an hour; the server's loop finds it
            deadline = time.monotonic() + 10
            while not hook.received and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop_worker(engine)
            detect.flush(engine)  # the deferred mark (and its hour-long timer) goes; nothing new is found
            detect.forget_budgets()
    assert [r.verified for r in hook.received] == [True]
    assert [e.status for e in events(engine)] == [DELIVERED]
