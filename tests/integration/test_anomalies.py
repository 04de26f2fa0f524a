"""Anomalies (issue 25) on SQLite and PostgreSQL: detection from the roll-ups and the time index against the
rule applied to generated weeks of history, the issue's example delivered once, back-dated imports, two
processes at once, the CLI's bad input.

Calls go to a provider without a price, so each costs the estimate of USD 1 per 1M tokens: ``usd("2.10")``
is exactly $2.10. Webhooks go to a local receiver that verifies signatures with ``standardwebhooks``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from budget_receiver import receiver
from sqlalchemy import Engine, func, select

import core.storage.schema  # noqa: F401 - every table on the metadata before the session's PostgreSQL schema is made
from core.anomalies import rule, service
from core.budgets import service as budgets
from core.notify import delivery
from core.recording.calls import Call, make_call, record_batch
from core.storage.anomaly_tables import Alert, AnomalyRecord
from core.storage.budget_tables import DELIVERED, DISABLED, BudgetEvent

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDBOARD_WEBHOOK_ALLOW_PRIVATE", "1")  # the receivers here listen on 127.0.0.1


def usd(amount: str | Decimal, at: datetime, user: str | None = None, project: str | None = None, **kw) -> Call:  # type: ignore[no-untyped-def]
    """A call that costs exactly ``amount`` dollars (the $1 per 1M tokens estimate)."""
    provider = kw.pop("provider", "acme")
    model = kw.pop("model", "model-x")
    tokens = int(Decimal(amount) * 1_000_000)
    return make_call(provider, model, tokens, 0, user=user, timestamp=at, project=project, **kw)


def stored(engine: Engine) -> list[AnomalyRecord]:
    return service.store.anomalies_since(engine, datetime(2000, 1, 1, tzinfo=UTC))


def outbox(engine: Engine) -> list[BudgetEvent]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(BudgetEvent).order_by(BudgetEvent.id)))


# --- the issue's example --------------------------------------------------------------------------

TUESDAY = datetime(2026, 12, 1, 14, tzinfo=UTC)  # 2026-12-01 is a Tuesday
EXAMPLE = {
    "scope": "user",
    "key": "batch-7",
    "hour": "2026-12-01T14:00:00Z",
    "spend": "31.40",
    "baseline": "2.00",
    "ratio": "15.70",
}


def example_history(engine: Engine) -> None:
    """batch-7: about $2 every Tuesday 14:00-15:00 for five weeks (median $2.00, MAD $0.10), beside a steady
    $100 an hour from another user on the same provider and model, so only the user's hour is unusual."""
    weekly = ["2.00", "1.90", "2.10", "1.90", "2.10"]  # five weeks back .. one week back
    calls = [
        usd(amount, TUESDAY - WEEK * (5 - i) + timedelta(minutes=10), user="batch-7") for i, amount in enumerate(weekly)
    ]
    for week in range(6):
        for h in range(-1, 2):
            calls.append(usd("100", TUESDAY - WEEK * week + HOUR * h + timedelta(minutes=30), user="steady"))
    record_batch(engine, calls)


def test_the_issue_example_is_listed_and_one_signed_event_is_delivered(engine: Engine) -> None:
    example_history(engine)
    with receiver() as hook:
        hook.secret = SECRET
        service.add_alert(engine, service.validate_alert(hook.url, SECRET), now=TUESDAY - HOUR)
        record_batch(engine, [usd("15.70", TUESDAY + timedelta(minutes=5), user="batch-7"),
                              usd("15.70", TUESDAY + timedelta(minutes=50), user="batch-7")])  # fmt: skip
        found_at = TUESDAY + HOUR + timedelta(seconds=5)
        assert service.run_pass(engine, found_at).new == 1  # the server's loop, five seconds after the hour
        result = budgets.check(engine)  # `budgets check` delivers (now: receivers check the signature's time)
        assert result.new_anomalies == 0 and result.report.delivered == 1
        listed = service.list_anomalies(engine, service.since_day(TUESDAY.date()), now=found_at)
        assert [service.record_json(a) for a in listed] == [EXAMPLE]
        assert listed[0].late is False
        (got,) = hook.received
        assert got.verified and got.status == 200
        assert got.payload["type"] == "anomaly.detected"
        assert got.payload["data"] == EXAMPLE
        assert got.payload["timestamp"] == "2026-12-01T15:00:05Z"
        # judged again, by a later check or after a restart: nothing new, nothing sent again
        assert budgets.check(engine).new_anomalies == 0
        assert len(hook.received) == 1
    (event,) = outbox(engine)
    assert event.status == DELIVERED and event.budget_id is None and not event.late


def test_more_spend_found_later_is_not_sent_again_and_the_listing_keeps_the_first_values(engine: Engine) -> None:
    example_history(engine)
    service.add_alert(engine, service.validate_alert("http://127.0.0.1:9/hook"), now=TUESDAY - HOUR)
    record_batch(engine, [usd("31.40", TUESDAY + timedelta(minutes=5), user="batch-7")])
    assert service.run_pass(engine, TUESDAY + HOUR).new == 1
    record_batch(engine, [usd("10", TUESDAY + timedelta(minutes=20), user="batch-7")])  # the hour is judged again
    again = service.run_pass(engine, TUESDAY + HOUR + timedelta(seconds=5))
    assert again.hours == 1 and again.found == 1 and again.new == 0
    (a,) = stored(engine)
    assert service.record_json(a) == EXAMPLE
    assert len(outbox(engine)) == 1


def test_a_back_dated_import_making_an_anomaly_in_a_past_hour_is_sent_once_marked_late(engine: Engine) -> None:
    example_history(engine)
    now = datetime.now(UTC)
    with receiver() as hook:
        hook.secret = SECRET
        service.add_alert(engine, service.validate_alert(hook.url, SECRET), now=now)
        assert stored(engine) == []
        # imported three days late: the spike of Tuesday 14:00
        record_batch(engine, [usd("31.40", TUESDAY + timedelta(minutes=5), user="batch-7")])
        assert budgets.check(engine).new_anomalies == 1
        assert budgets.check(engine).new_anomalies == 0
        (got,) = hook.delivered
        assert got.payload["data"] == EXAMPLE
    (a,) = stored(engine)
    assert a.late is True
    (event,) = outbox(engine)
    assert event.late is True


def test_an_alert_hears_only_of_anomalies_found_after_it_was_added(engine: Engine) -> None:
    example_history(engine)
    record_batch(engine, [usd("31.40", TUESDAY + timedelta(minutes=5), user="batch-7")])
    service.add_alert(engine, service.validate_alert("http://127.0.0.1:9/hook"), now=TUESDAY + timedelta(days=1))
    assert len(stored(engine)) == 1  # found by the pass that ran before the webhook was stored
    assert outbox(engine) == []


def test_a_410_turns_the_alert_off(engine: Engine) -> None:
    example_history(engine)
    with receiver() as hook:
        hook.answers = [410]
        service.add_alert(engine, service.validate_alert(hook.url), now=TUESDAY - HOUR)
        record_batch(engine, [usd("31.40", TUESDAY + timedelta(minutes=5), user="batch-7")])
        report = budgets.check(engine, now=TUESDAY + HOUR).report
        assert report.disabled == 1
    (event,) = outbox(engine)
    assert event.status == DISABLED
    with engine.connect() as conn:
        assert conn.execute(select(Alert.webhook_disabled_at)).scalar() is not None


# --- generated weeks against the rule -------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")  # leaves summer time on 2026-10-25
NOW = datetime(2026, 10, 30, 0, 5, tzinfo=UTC)


def generated_weeks(seed: int) -> list[tuple[datetime, str, str | None, str | None, Decimal]]:
    """Six weeks of hourly calls: (time, model, user, project, cost)."""
    rnd = random.Random(seed)
    start = datetime(2026, 9, 17, tzinfo=UTC)
    calls = []
    hour = start
    while hour < NOW - timedelta(minutes=5):
        local = hour.astimezone(BERLIN)
        weekday, minute = hour.weekday(), timedelta(minutes=rnd.randrange(60))

        def add(model: str, user: str | None, project: str | None, cost: str, at: datetime = hour + minute) -> None:
            calls.append((at, model, user, project, Decimal(cost)))

        # a weekly peak that is normal: Monday 09:00 UTC, about $40, every week
        add(
            "model-a",
            "reports",
            "billing",
            str(rnd.choice([38, 40, 41, 44])) if (weekday, hour.hour) == (0, 9) else "0.20",
        )
        # a user whose day follows Berlin's clock: $20 at 09:00 local on weekdays (07:00 UTC, then 08:00 after DST)
        if weekday < 5 and local.hour == 9:
            add("model-b", "berlin-9am", "ops", str(rnd.choice([19, 20, 21])))
        # a drop: a user who spent $30 an hour on Wednesdays and stops in the last week
        if weekday == 2 and hour.hour == 12 and hour < NOW - timedelta(days=7):
            add("model-a", "dropper", "billing", "30")
        hour += HOUR
    # spikes: three hours of the last week far above their usual
    for at, user, project, cost in (
        (datetime(2026, 10, 27, 16, tzinfo=UTC), "reports", "billing", "55.50"),
        (datetime(2026, 10, 28, 3, tzinfo=UTC), "night-owl", None, "12.00"),
        (datetime(2026, 10, 26, 9, tzinfo=UTC), "reports", "billing", "300.00"),  # on top of the Monday peak
    ):
        calls.append((at + timedelta(minutes=7), "model-a", user, project, Decimal(cost)))
    # a young key: first call ten days ago, then a big hour (never judged: under 14 days of history)
    calls.append((datetime(2026, 10, 20, 10, 3, tzinfo=UTC), "model-c", "newcomer", "fresh", Decimal("1.00")))
    calls.append((datetime(2026, 10, 29, 10, 3, tzinfo=UTC), "model-c", "newcomer", "fresh", Decimal("90.00")))
    # night-owl is old: a call seven weeks back, none since (its baseline is four zero weeks)
    calls.append((datetime(2026, 9, 10, 3, 1, tzinfo=UTC), "model-a", "night-owl", None, Decimal("0.50")))
    return calls


def oracle(calls: list[tuple[datetime, str, str | None, str | None, Decimal]]) -> set[tuple[str, str, datetime, str]]:
    """The contract's rule applied in Python to the generated calls themselves."""
    spend: dict[tuple[str, str], dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    first: dict[tuple[str, str], datetime] = {}
    for at, model, user, project, cost in calls:
        hour = at.replace(minute=0, second=0, microsecond=0)
        for key in (("provider", "acme"), ("model", f"acme/{model}"), ("user", user), ("project", project)):
            if key[1]:
                spend[key][hour] += cost  # type: ignore[index]
                first[key] = min(first.get(key, at), at)  # type: ignore[index]
    expected = set()
    for key, hours in spend.items():
        for hour, amount in hours.items():
            if not (service.default_since(NOW) <= hour and hour + HOUR <= NOW):
                continue
            verdict = rule.judge(amount, [hours.get(h, Decimal(0)) for h in rule.baseline_hours(hour)])
            if verdict and rule.judged(hour, first[key]):
                expected.add((key[0], key[1], hour, rule.money_text(verdict.spend)))
    return expected


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_weeks_give_exactly_the_anomalies_of_the_rule(engine: Engine, seed: int) -> None:
    calls = generated_weeks(seed)
    record_batch(engine, [usd(c, at, user=u, project=p, model=m) for at, m, u, p, c in calls])
    listed = service.list_anomalies(engine, now=NOW)
    got = {(a.scope, a.key, a.hour, rule.money_text(a.spend)) for a in listed}
    assert got == oracle(calls)
    keys = {(a.scope, a.key, a.hour) for a in listed}
    # the spikes are found; the normal Monday peak, the drop and the young key are not
    assert ("user", "reports", datetime(2026, 10, 27, 16, tzinfo=UTC)) in keys
    assert ("user", "night-owl", datetime(2026, 10, 28, 3, tzinfo=UTC)) in keys
    assert ("user", "reports", datetime(2026, 10, 26, 9, tzinfo=UTC)) in keys
    assert not any(k == "dropper" or k == "newcomer" or k == "fresh" for _s, k, _h in keys)
    # DST: Berlin's 09:00 moved from 07:00 to 08:00 UTC on Oct 25; hours of the week are UTC, so the
    # first weekdays at 08:00 UTC are new to the rule (baseline 0) and the 07:00 hours are simply quiet
    berlin = [a for a in listed if a.scope == "user" and a.key == "berlin-9am"]
    assert {a.hour for a in berlin} == {datetime(2026, 10, d, 8, tzinfo=UTC) for d in (26, 27, 28, 29)}
    assert all(a.ratio is None and a.baseline == 0 for a in berlin)
    night = next(a for a in listed if a.key == "night-owl")
    assert service.record_json(night)["ratio"] is None


def test_a_back_dated_call_into_a_baseline_week_rejudges_the_hours_after(engine: Engine) -> None:
    """$34 against [0, 0, 10, 10] is usual (MAD 5); a back-dated $5 makes it [0, 5, 10, 10]: an anomaly."""
    hour = datetime(2026, 10, 28, 12, tzinfo=UTC)
    history = [usd("1", hour - WEEK * 6, user="u")]  # old enough
    history += [usd("10", hour - WEEK * n + timedelta(minutes=1), user="u") for n in (3, 4)]
    history.append(usd("34", hour + timedelta(minutes=1), user="u"))
    record_batch(engine, history)
    assert service.run_pass(engine, NOW).found == 0 or all(a.scope != "user" for a in stored(engine))
    record_batch(engine, [usd("5", hour - WEEK * 2 + timedelta(minutes=2), user="u")])
    service.run_pass(engine, NOW + timedelta(seconds=5))
    assert ("user", "u", hour) in {(a.scope, a.key, a.hour) for a in stored(engine)}


# --- exactly once with two processes ---------------------------------------------------------------

DETECTOR = """
import sys, time
from datetime import datetime
from pathlib import Path
from core.anomalies import service
from core.notify import delivery
from core.storage.engine import make_engine

url, go, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
engine = make_engine(url)
while not Path(go).exists():
    time.sleep(0.002)
for i in range(3):
    service.run_pass(engine, now)
    delivery.deliver_due(engine)  # real time: the receiver checks the signature's timestamp
"""


def test_two_processes_detecting_at_once_store_and_send_each_anomaly_once(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    calls = generated_weeks(3)
    record_batch(engine, [usd(c, at, user=u, project=p, model=m) for at, m, u, p, c in calls])
    expected = oracle(calls)
    with receiver() as hook:
        hook.secret = SECRET
        with engine.begin() as conn:  # an alert from before any pass: every anomaly goes to it
            conn.execute(Alert.__table__.insert().values(webhook_url=hook.url, webhook_secret=SECRET, created_at=NOW))
        go = tmp_path / "go"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [
            subprocess.Popen([sys.executable, "-c", DETECTOR, db_url, str(go), NOW.isoformat()], env=env, cwd=REPO)
            for _ in range(2)
        ]
        time.sleep(1.5)
        go.touch()
        assert [p.wait(timeout=180) for p in procs] == [0, 0]
        delivery.deliver_due(engine)
        sent = sorted(
            (r.payload["data"]["scope"], r.payload["data"]["key"], r.payload["data"]["hour"]) for r in hook.delivered
        )
    assert len(stored(engine)) == len(expected) and len(sent) == len(expected) > 5
    assert len(set(sent)) == len(sent)
    assert all(r.verified for r in hook.received)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(BudgetEvent)).scalar() == len(expected)


# --- the command line --------------------------------------------------------------------------------


def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):  # type: ignore[no-untyped-def]
    from core.cli.main import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("anomalies", "--since", "2026-13-01"), "--since: '2026-13-01'"),
        (("alerts", "add", "--webhook", "ftp://example.com/hook"), "webhook: 'ftp://example.com/hook'"),
        (("alerts", "add", "--webhook", "example.com/hook"), "webhook: 'example.com/hook'"),
        (("alerts", "add", "--webhook", "https://example.com/h", "--secret", "s3cret"), "secret: 's3cret'"),
        (("alerts", "add", "--webhook", "https://example.com/h", "--secret", "whsec_!!"), "secret: 'whsec_!!'"),
        (("alerts", "remove", "7"), "alert: 7"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    args: tuple[str, ...],
    named: str,  # type: ignore[no-untyped-def]
) -> None:
    code, out, err = run_cli(db_url, monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and named in err and len(err.strip().splitlines()) == 1
    assert stored(engine) == [] and outbox(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Alert)).scalar() == 0


def test_cli_alerts_and_anomalies_json(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    record_batch(engine, [usd("1", datetime.now(UTC) - timedelta(days=30), user="old"),
                          usd("5", datetime.now(UTC) - timedelta(hours=3), user="old")])  # fmt: skip
    code, out, err = run_cli(
        db_url, monkeypatch, capsys, "alerts", "add", "--webhook", "https://example.com/h", "--json"
    )
    assert code == 0, err
    added = json.loads(out)
    assert added["webhook"] == "https://example.com/h" and added["secret"].startswith("whsec_")
    delivery.secret_key(added["secret"])
    code, out, err = run_cli(db_url, monkeypatch, capsys, "alerts", "list", "--json")
    assert code == 0 and [a["webhook"] for a in json.loads(out)["alerts"]] == ["https://example.com/h"]
    code, out, err = run_cli(db_url, monkeypatch, capsys, "anomalies", "--json")
    assert code == 0, err
    listed = json.loads(out)["anomalies"]
    assert sorted(a["scope"] for a in listed) == ["model", "provider", "user"]  # $5 against four quiet weeks
    found = next(a for a in listed if a["scope"] == "user")
    assert {k: found[k] for k in ("scope", "key", "spend", "baseline", "ratio")} == {
        "scope": "user", "key": "old", "spend": "5.00", "baseline": "0.00", "ratio": None,
    }  # fmt: skip
    code, out, err = run_cli(db_url, monkeypatch, capsys, "anomalies")
    assert code == 0 and "old" in out and "$5.00" in out
    code, out, err = run_cli(db_url, monkeypatch, capsys, "alerts", "remove", str(added["id"]))
    assert code == 0
    code, out, err = run_cli(db_url, monkeypatch, capsys, "alerts", "list", "--json")
    assert json.loads(out) == {"alerts": []}


def test_a_young_key_whose_history_is_imported_later_is_judged_in_the_hours_it_was_skipped(engine: Engine) -> None:
    """Ten days old at the spike: skipped. Its older history imported later makes it old enough: found, late."""
    spike = datetime(2026, 10, 29, 10, tzinfo=UTC)
    record_batch(engine, [usd("1", datetime(2026, 10, 20, 10, 3, tzinfo=UTC), user="late-history", model="model-z"),
                          usd("90", spike + timedelta(minutes=3), user="late-history", model="model-z")])  # fmt: skip
    service.run_pass(engine, NOW)
    assert not [a for a in stored(engine) if a.key == "late-history"]
    # its September calls, imported now: their own hours and the weeks after are all before the judged range
    record_batch(engine, [usd("0.50", datetime(2026, 9, 1, 10, 1, tzinfo=UTC), user="late-history", model="model-z")])
    service.run_pass(engine, NOW + timedelta(minutes=1))
    found = {(a.scope, a.key): a for a in stored(engine)}
    user = found[("user", "late-history")]
    assert user.hour == spike and user.late and service.record_json(user)["ratio"] is None
    assert ("model", "acme/model-z") in found
