"""Enforced budgets (issue 21): the check, holds, each:user / each:project, bad input; SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import core.limits  # noqa: F401 - registers the counters on recording, as every entrypoint does
from core.budgets import detect
from core.budgets import service as budgets
from core.limits import service
from core.notify import delivery
from core.recording.calls import make_call, record_batch, record_usage
from core.storage.budget_tables import BudgetEvent
from core.storage.limit_tables import LimitHold
from core.times import now_utc

# no price row for this provider: the `estimate` step prices every token at USD 1 per 1M,
# so a call of N input tokens costs exactly N / 1,000,000 dollars
PROVIDER = "acme-llm"


@pytest.fixture(autouse=True)
def no_cached_budgets() -> None:
    detect.forget_budgets()


def spend(engine: Engine, dollars: str, *, user: str | None = None, project: str | None = None, rid: str | None = None):
    tokens = int(Decimal(dollars) * 1_000_000)
    return record_usage(engine, make_call(PROVIDER, "m-1", tokens, 0, user=user, project=project, request_id=rid))


def add(engine: Engine, name: str, amount: str, scope: str = "all", *, enforce: bool = True, **kw: Any):
    period = kw.get("period", "month")
    spec = budgets.validate(name, amount, period, scope, "UTC", kw.get("thresholds"), kw.get("webhook"), None)
    spec = budgets.BudgetSpec(**{**spec.__dict__, "enforce": enforce})
    return budgets.add_budget(engine, spec).budget


def ask(engine: Engine, estimate: str, **kw: Any) -> service.Decision:
    return service.decide(engine, service.validate(engine, estimated_cost=estimate, **kw))


def test_the_issue_example_free_tier_per_user(engine: Engine) -> None:
    add(engine, "free-tier", "2", "each:user")
    spend(engine, "1.20", user="u-17")
    spend(engine, "0.50", user="u-17")
    spend(engine, "3", user="u-99")  # another user's spend is not u-17's
    denied = ask(engine, "0.50", user="u-17", provider="openai", model="gpt-4o")
    assert denied.allowed is False
    assert denied.as_json() == {
        "allowed": False,
        "limits": [
            {
                "budget": "free-tier",
                "subject": "u-17",
                "period_end": denied.limits[0].period_end.isoformat().replace("+00:00", "Z"),
                "amount": "2.00",
                "spend": "1.70",
                "held": "0.00",
                "remaining": "0.30",
            }
        ],
    }
    allowed = ask(engine, "0.50", user="u-18", provider="openai", model="gpt-4o")
    assert allowed.allowed is True and allowed.limits[0].remaining == Decimal(2)
    # the check fits exactly what is left
    assert ask(engine, "0.30", user="u-17").allowed is True
    # a check naming no user: an each:user budget does not apply
    assert ask(engine, "100", provider="openai").as_json() == {"allowed": True, "limits": []}


def test_every_applying_enforced_budget_is_listed_and_each_must_fit(engine: Engine) -> None:
    add(engine, "org", "10")
    add(engine, "team-a", "1", "project:team-a")
    add(engine, "openai-only", "1", "provider:openai")
    add(engine, "alerts-only", "0.01", enforce=False)  # not enforced: never denies
    spend(engine, "0.90", project="team-a")
    team = ask(engine, "0.20", project="team-a", provider=PROVIDER)
    assert not team.allowed
    assert [(s.budget, s.remaining) for s in team.limits] == [("org", Decimal("9.1")), ("team-a", Decimal("0.1"))]
    other = ask(engine, "0.20", project="team-b", provider=PROVIDER)
    assert other.allowed and [s.budget for s in other.limits] == ["org"]
    # a later call counts at once (the counters are kept in the recording transaction)
    spend(engine, "9.00", project="team-b")
    assert not ask(engine, "0.20", project="team-b").allowed


def test_a_hold_counts_for_checks_until_its_call_is_recorded_then_the_real_cost_counts(engine: Engine) -> None:
    b = add(engine, "cap", "5")
    first = ask(engine, "3", reserve=True, request_id="req-1")
    assert first.allowed and first.held and first.limits[0].held == 0  # as it stood before its own hold
    second = ask(engine, "3", reserve=True, request_id="req-2")
    assert not second.allowed and second.limits[0].held == Decimal(3) and second.limits[0].remaining == 2
    # holds are not spend: budgets list shows none of it
    (status,) = budgets.list_status(engine)
    assert status.budget.id == b.id and status.spend == 0
    # the call arrives with a real cost of 1.25: the hold is gone and the cost counts
    spend(engine, "1.25", rid="req-1")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LimitHold)).scalar_one() == 0
    after = ask(engine, "3.75")
    assert after.allowed and after.limits[0].spend == Decimal("1.25") and after.limits[0].held == 0


def test_a_second_reserve_with_the_same_request_id_replaces_the_first(engine: Engine) -> None:
    add(engine, "cap", "5")
    assert ask(engine, "4", reserve=True, request_id="same").allowed
    again = ask(engine, "4.5", reserve=True, request_id="same")  # its own old hold does not stand in the way
    assert again.allowed and again.limits[0].held == 0
    assert ask(engine, "0.50").limits[0].held == Decimal("4.5")


def test_holds_expire_after_hold_seconds(engine: Engine) -> None:
    add(engine, "cap", "5")
    moment = now_utc()
    request = service.validate(engine, estimated_cost="5", reserve=True, request_id="r-exp", hold_seconds=30)
    assert service.reserve(engine, request, now=moment).allowed
    probe = service.validate(engine, estimated_cost="1")
    assert not service.check(engine, probe, now=moment + timedelta(seconds=29)).allowed
    assert service.check(engine, probe, now=moment + timedelta(seconds=31)).allowed


def test_reserve_for_a_request_id_already_recorded_is_refused(engine: Engine) -> None:
    add(engine, "cap", "5")
    spend(engine, "1", rid="done-1")
    with pytest.raises(service.RecordedAlready, match="request_id: 'done-1' is already recorded"):
        ask(engine, "1", reserve=True, request_id="done-1")


def _twenty_reserving_threads(engine: Engine, then: Any = None, **who: str) -> list[bool]:
    """20 threads reserving a dollar each at once (``then(request_id)`` after each allowed one): who was allowed."""
    start = threading.Barrier(20)
    results: list[bool] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        rid = f"t-{i}"
        request = service.validate(engine, estimated_cost="1", reserve=True, request_id=rid, **who)
        start.wait()
        allowed = service.decide(engine, request).allowed
        if allowed and then is not None:
            then(rid)
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_twenty_threads_reserving_one_dollar_against_five_left_get_exactly_five(engine: Engine) -> None:
    add(engine, "cap", "8")
    spend(engine, "3")
    assert sorted(_twenty_reserving_threads(engine)) == [False] * 15 + [True] * 5
    final = ask(engine, "0")
    assert final.limits[0].held == Decimal(5) and final.limits[0].remaining == 0


def test_twenty_threads_reserving_and_recording_against_one_users_allowance_never_overrun_it(engine: Engine) -> None:
    """An each:user budget's spend is read from the roll-ups at each reserve, not kept on its counter: the calls
    of the allowed reserves are recorded while the others still reserve (each real cost replacing its hold in
    the recording's transaction), and exactly the five dollars left are ever allowed, whatever the interleaving.
    A reserve that read the counter's ``held`` after a recording settled a hold but the spend from before it
    commits would allow a sixth."""
    add(engine, "per-user", "8", "each:user")
    spend(engine, "3", user="u-1")
    spend(engine, "7", user="u-2")  # another user's spend never counts against u-1

    def recorded(rid: str) -> None:
        spend(engine, "1", user="u-1", rid=rid)  # the call made: its cost replaces its hold

    assert sorted(_twenty_reserving_threads(engine, recorded, user="u-1")) == [False] * 15 + [True] * 5
    (state,) = ask(engine, "0", user="u-1").limits
    assert (state.spend, state.held, state.remaining) == (Decimal(8), 0, 0)
    (other,) = ask(engine, "0", user="u-3").limits
    assert (other.spend, other.remaining) == (0, Decimal(8))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"estimated_cost": -1}', "estimated_cost: -1 is negative"),
        (b'{"estimated_cost": NaN}', "estimated_cost: NaN is not a finite number"),
        (b'{"estimated_cost": Infinity}', "estimated_cost: Infinity is not a finite number"),
        (b'{"estimated_cost": "ten"}', "estimated_cost: 'ten' is not a number"),
        (b'{"estimated_cost": true}', "estimated_cost: True is not a decimal amount"),
        (b'{"estimated_cost": 1, "budget": "x"}', "budget: not a field of a check"),
        (b'{"estimated_cost": 1, "reserve": true}', "request_id: missing"),
        (b'{"estimated_cost": 1, "reserve": true, "request_id": "has space"}', "request_id: 'has space' is not"),
        (b'{"estimated_cost": 1, "reserve": true, "request_id": "r", "hold_seconds": 0}', "hold_seconds: 0 is not"),
        (b'{"estimated_cost": 1, "reserve": true, "request_id": "r", "hold_seconds": 86401}', "hold_seconds: 86401"),
        (b'{"estimated_cost": 1, "reserve": "yes", "request_id": "r"}', "reserve: 'yes' is not true or false"),
        (b'{"estimated_cost": 1, "input_tokens": 5}', "estimated_cost: given together"),
        (b'{"input_tokens": 5, "output_tokens": 5}', "provider: needed to price"),
        (b'{"provider": "openai", "model": "gpt-4o", "input_tokens": -5}', "input_tokens: -5"),
        (b"{}", "estimated_cost: missing"),
        (b"[1]", "body: not a JSON object"),
        (b"nope", "body: not JSON"),
    ],
)
def test_bad_input_names_the_field_and_holds_nothing(engine: Engine, raw: bytes, field: str) -> None:
    add(engine, "cap", "5")
    with pytest.raises(service.LimitError) as caught:
        service.decide(engine, service.parse_request_json(engine, raw))
    assert str(caught.value).startswith(field), str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LimitHold)).scalar_one() == 0


def test_tokens_are_priced_as_a_call(engine: Engine) -> None:
    add(engine, "cap", "0.003")
    body = b'{"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100}'
    request = service.parse_request_json(engine, body)
    assert request.estimated_cost == Decimal("0.0035")  # 1000 x 2.5e-6 + 100 x 1e-5, as `cost` prices it
    assert not service.decide(engine, request).allowed


def test_each_user_budget_alerts_every_user_on_their_own(engine: Engine) -> None:
    b = add(engine, "per-user", "1", "each:user", thresholds="100", enforce=False)
    spend(engine, "1.50", user="alice")
    spend(engine, "0.40", user="bob")
    spend(engine, "2.00", user="carol")
    spend(engine, "5.00")  # no user: no subject, no event
    detect.reconcile(engine)
    with engine.connect() as conn:
        events = conn.execute(select(BudgetEvent.subject, BudgetEvent.spend).order_by(BudgetEvent.subject)).all()
    assert [(e.subject, e.spend) for e in events] == [("alice", Decimal("1.5")), ("carol", Decimal(2))]
    detect.reconcile(engine)  # exactly once per (budget, period, threshold, subject)
    spend(engine, "0.70", user="bob")
    detect.reconcile(engine)
    with Session(engine) as session:
        rows = list(session.scalars(select(BudgetEvent)))
    assert sorted(e.subject for e in rows) == ["alice", "bob", "carol"]
    bob = next(e for e in rows if e.subject == "bob")
    payload = delivery.event_payload(bob, b)
    assert payload["data"]["subject"] == "bob" and payload["data"]["scope"] == "each:user"


def test_each_project_budget_and_denials_counted(engine: Engine) -> None:
    add(engine, "per-project", "1", "each:project")
    spend(engine, "0.90", project="p1")
    assert not ask(engine, "0.20", project="p1").allowed
    assert not ask(engine, "0.20", project="p1", reserve=True, request_id="d-2").allowed
    assert ask(engine, "0.20", project="p2").allowed
    from core.limits import views

    (row,) = views.enforced(engine)
    assert row.name == "per-project" and row.denied == 2
    top = views.closest_subjects(engine, row.budget, limit=5)
    assert [(s.subject, s.spend) for s in top] == [("p1", Decimal("0.9"))]
    # a search finds the subjects that spent (from the roll-ups) and those with a hold or a denial (counters)
    assert [s.subject for s in views.closest_subjects(engine, row.budget, search="1", limit=5)] == ["p1"]
    assert views.closest_subjects(engine, row.budget, search="2", limit=5) == []
    spend(engine, "0.05", project="p2")
    spend(engine, "0.01", project="p22")
    assert ask(engine, "2", project="p3x").allowed is False
    found = views.closest_subjects(engine, row.budget, search="2", limit=5)
    assert [(s.subject, s.spend) for s in found] == [("p2", Decimal("0.05")), ("p22", Decimal("0.01"))]
    (denied,) = views.closest_subjects(engine, row.budget, search="3x", limit=5)
    assert (denied.subject, denied.spend, denied.denied) == ("p3x", 0, 1)


def test_a_counter_missed_by_recording_is_summed_again_after_a_reprice(engine: Engine) -> None:
    """Calls recorded before the budget existed count: a new counter is summed from the roll-ups."""
    spend(engine, "4")
    add(engine, "cap", "5")
    assert ask(engine, "1").allowed
    assert not ask(engine, "1.01").allowed
    record_batch(engine, [make_call(PROVIDER, "m-1", 500_000, 0) for _ in range(2)])
    assert not ask(engine, "0.01").allowed


def test_expired_holds_are_swept_by_the_next_reserve_and_stop_counting(engine: Engine) -> None:
    from core.storage.limit_tables import LimitCounter

    add(engine, "cap", "5")
    moment = now_utc()
    first = service.validate(engine, estimated_cost="4", reserve=True, request_id="old", hold_seconds=10)
    assert service.reserve(engine, first, now=moment).allowed
    later = moment + timedelta(seconds=11)
    second = service.validate(engine, estimated_cost="4.5", reserve=True, request_id="new", hold_seconds=10)
    assert service.reserve(engine, second, now=later).allowed  # the expired hold no longer counts
    with engine.connect() as conn:
        assert conn.execute(select(LimitHold.request_id)).scalars().all() == ["new"]
        assert conn.execute(select(LimitCounter.held)).scalar_one() == Decimal("4.5")
    service.release(engine, "new")
    assert ask(engine, "5").allowed


def _holds_and_held(engine: Engine) -> tuple[int, Decimal, Decimal]:
    """(holds on the table, their sum, what the counters' ``held`` says)."""
    from core.storage.limit_tables import LimitCounter

    with engine.connect() as conn:
        count, total = conn.execute(select(func.count(), func.coalesce(func.sum(LimitHold.amount), 0))).one()
        held = conn.execute(select(func.coalesce(func.sum(LimitCounter.held), 0))).scalar_one()
    return count, Decimal(total), Decimal(held)


def test_holds_left_by_a_client_that_stopped_are_swept_by_the_server_loop(engine: Engine) -> None:
    """A client reserved and crashed: no reserve comes to sweep its expired holds, the server's loop does."""
    from core.budgets import worker

    add(engine, "cap", "5")
    add(engine, "per-user", "3", "each:user")
    moment = now_utc() - timedelta(minutes=10)
    for i in range(30):
        request = service.validate(
            engine, estimated_cost="0.10", user=f"u-{i % 3}", reserve=True, request_id=f"gone-{i}", hold_seconds=60
        )
        assert service.reserve(engine, request, now=moment).allowed
    assert _holds_and_held(engine) == (60, Decimal("6.00"), Decimal("6.00"))  # two budgets apply to each
    live = service.validate(engine, estimated_cost="1", user="u-0", reserve=True, request_id="live", hold_seconds=600)
    assert service.reserve(engine, live).allowed
    worker.tick(engine, detect.Watermark())  # the loop's pass: the expired holds go, the live one stays
    with engine.connect() as conn:
        assert conn.execute(select(LimitHold.request_id).distinct()).scalars().all() == ["live"]
    assert _holds_and_held(engine) == (2, Decimal(2), Decimal(2))
    assert service.sweep_expired_holds(engine) == 0  # nothing left: one read
    decision = ask(engine, "4", user="u-0")
    assert [(s.budget, s.held) for s in decision.limits] == [("cap", Decimal(1)), ("per-user", Decimal(1))]


def test_sweeps_reserves_and_recordings_at_once_release_each_hold_once(engine: Engine) -> None:
    """The counters' ``held`` stays the sum of the holds on the table whatever order the three run in, and no
    two of them deadlock on PostgreSQL (budgets of two periods, per user and per project, lock in one order)."""
    add(engine, "cap", "1000")
    add(engine, "per-project-day", "1000", "each:project", period="day")
    add(engine, "per-user", "1000", "each:user")
    add(engine, "per-user-day", "1000", "each:user", period="day")
    past = now_utc() - timedelta(minutes=10)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def reserving(worker_id: int) -> None:
        start.wait()
        for i in range(15):
            rid = f"w{worker_id}-{i}"
            who = {"user": f"u-{i % 2}", "project": f"p-{i % 3}"}
            request = service.validate(
                engine, estimated_cost="0.5", reserve=True, request_id=rid, hold_seconds=60, **who
            )
            service.reserve(engine, request, now=past if i % 2 else None)  # every other hold already expired
            if i % 3 == 0:
                spend(engine, "0.25", rid=rid, **who)  # recorded: its hold, expired or not, settles

    def sweeping() -> None:
        start.wait()
        for _ in range(20):
            service.sweep_expired_holds(engine)

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(reserving, n)) for n in range(4)]
    threads += [threading.Thread(target=guarded, args=(sweeping,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    count, total, held = _holds_and_held(engine)
    assert held == total and count > 0  # nothing released twice, nothing left counted after it went
    service.sweep_expired_holds(engine)
    count, total, held = _holds_and_held(engine)
    assert count == 4 * 5 * 4  # the unexpired, unrecorded reserves of 4 workers, on 4 budgets each
    assert held == total == Decimal("0.5") * count


def test_recording_keeps_every_kind_of_counter_exact(engine: Engine) -> None:
    """Counters of every scope and two periods, read once (so they exist), then a mixed batch recorded: each
    check answers the spend the roll-ups give (``budgets list``), not one pico-dollar off."""
    from core.recording.calls import make_call

    scopes = ["all", "provider:acme-llm", "model:m-2", "user:u-1", "project:p-2", "each:user", "each:project"]
    for period in ("month", "day"):
        for scope in scopes:
            add(engine, f"{scope}-{period}", "1000", scope, period=period)
    who = [dict(user="u-1", project="p-1"), dict(user="u-2", project="p-2"), dict(user=None, project=None)]
    for person in who:  # the counters exist before the batch: recording must add to them, not be summed later
        ask(engine, "0", provider=PROVIDER, model="m-2", **person)
    calls = [make_call(PROVIDER, f"m-{1 + i % 2}", 1_000 + 37 * i, 0, **who[i % 3]) for i in range(30)] + [
        make_call("other-llm", "m-2", 5_000, 0, user="u-1", project="p-2")
    ]
    record_batch(engine, calls)
    expected = {s.budget.name: s.spend for s in budgets.list_status(engine)}
    for person in who:
        decision = ask(engine, "0", provider=PROVIDER, model="m-2", **person)
        for state in decision.limits:
            if state.subject:  # each: budgets: the subject's own spend, from the calls
                mine = [c for c in calls if (c.user if "each:user" in state.budget else c.project) == state.subject]
                assert state.spend == sum((Decimal(c.input_tokens) / 1_000_000 for c in mine), Decimal(0))
            else:
                assert state.spend == expected[state.budget], state.budget
    assert {s.budget for s in decision.limits} >= {"all-month", "all-day", "model:m-2-month", "provider:acme-llm-day"}


def test_each_budgets_in_a_zone_off_utc_count_the_calls_near_their_period_edges(engine: Engine) -> None:
    """An each: budget in Asia/Kolkata: its periods start at 18:30 UTC, so a check adds (or takes off) the raw
    calls between each end and the nearest UTC midnight to the roll-ups' day rows. A call a minute before the
    period is left out, a call a minute into it counted, to the pico-dollar, for a user and for a project."""
    from zoneinfo import ZoneInfo

    from core.budgets.periods import period_of

    for scope, period in (("each:user", "day"), ("each:user", "month"), ("each:project", "week")):
        spec = budgets.validate(f"{scope}-{period}", "1000", period, scope, "Asia/Kolkata")
        budgets.add_budget(engine, budgets.BudgetSpec(**{**spec.__dict__, "enforce": True}))
    now = now_utc()
    zone = ZoneInfo("Asia/Kolkata")
    moments = [now - timedelta(minutes=1)]
    for period in ("day", "month", "week"):
        start = period_of(now, period, zone).start
        moments += [start - timedelta(minutes=1), start + timedelta(minutes=1), start + timedelta(hours=7)]
    calls = [
        make_call(PROVIDER, "m-1", 1_000 + 7 * i, 0, user="u-k", project="p-k", timestamp=moment)
        for i, moment in enumerate(sorted(m for m in moments if m <= now))
    ]
    record_batch(engine, calls)
    for state in ask(engine, "0", user="u-k", project="p-k").limits:
        inside = [c for c in calls if state.period_start <= c.timestamp < state.period_end]
        assert state.spend == sum((Decimal(c.input_tokens) / 1_000_000 for c in inside), Decimal(0)), state.budget
        assert 0 < len(inside) < len(calls) or state.budget == "each:user-month", state.budget
