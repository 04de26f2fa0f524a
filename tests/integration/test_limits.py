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
    spec = budgets.validate(name, amount, "month", scope, "UTC", kw.get("thresholds"), kw.get("webhook"), None)
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


def test_twenty_threads_reserving_one_dollar_against_five_left_get_exactly_five(engine: Engine) -> None:
    add(engine, "cap", "8")
    spend(engine, "3")
    start = threading.Barrier(20)
    results: list[bool] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        request = service.validate(engine, estimated_cost="1", reserve=True, request_id=f"t-{i}")
        start.wait()
        allowed = service.decide(engine, request).allowed
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True] * 5
    final = ask(engine, "0")
    assert final.limits[0].held == Decimal(5) and final.limits[0].remaining == 0


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
    assert [s.subject for s in views.closest_subjects(engine, row.budget, search="2", limit=5)] == ["p2"]


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


# ---- counters shared by budgets of one scope and period (0016) ------------------------------------


def add_period(engine: Engine, name: str, amount: str, scope: str, period: str, tz: str = "UTC"):
    spec = budgets.validate(name, amount, period, scope, tz, None, None, None)
    return budgets.add_budget(engine, budgets.BudgetSpec(**{**spec.__dict__, "enforce": True})).budget


def counters(engine: Engine) -> list[tuple[str, str, Decimal, Decimal]]:
    from core.storage.limit_tables import LimitCounter

    c = LimitCounter.__table__.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.scope_kind, c.subject, c.spend, c.held).order_by(c.scope_kind, c.subject))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_budgets_of_one_scope_and_period_share_one_counter_and_one_hold(engine: Engine) -> None:
    add(engine, "free-tier", "2", "each:user")
    add(engine, "u-17 cap", "1.50", "user:u-17")  # the same user's spend, the same month
    spend(engine, "0.40", user="u-17")
    first = ask(engine, "0.50", user="u-17")
    assert [(s.budget, s.spend, s.remaining) for s in first.limits] == [
        ("free-tier", Decimal("0.40"), Decimal("1.60")),
        ("u-17 cap", Decimal("0.40"), Decimal("1.10")),
    ]
    held = ask(engine, "1", user="u-17", reserve=True, request_id="r-1")
    assert held.allowed
    # one counter, held once: both budgets see the one hold of 1
    assert counters(engine) == [("user", "u-17", Decimal("0.40"), Decimal(1))]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LimitHold)).scalar_one() == 1
    after = ask(engine, "0.20", user="u-17")
    assert [(s.held, s.remaining) for s in after.limits] == [
        (Decimal(1), Decimal("0.60")),
        (Decimal(1), Decimal("0.10")),
    ]
    assert not after.allowed  # 0.20 does not fit the 0.10 u-17 cap leaves
    # the call arrives: its real cost counts once on the shared counter, the hold goes
    spend(engine, "0.70", user="u-17", rid="r-1")
    assert counters(engine) == [("user", "u-17", Decimal("1.10"), Decimal(0))]
    final = ask(engine, "0.40", user="u-17")
    assert [s.remaining for s in final.limits] == [Decimal("0.90"), Decimal("0.40")] and final.allowed
    # denials stay per budget: the page counts the one that denied
    from core.limits import views

    denied = {r.name: r.denied for r in views.enforced(engine)}
    assert denied == {"free-tier": 0, "u-17 cap": 1}


def test_budgets_of_one_scope_and_other_periods_keep_their_own_counters(engine: Engine) -> None:
    add_period(engine, "daily", "1", "each:user", "day")
    add_period(engine, "monthly", "10", "each:user", "month")
    add_period(engine, "monthly again", "3", "each:user", "month")
    spend(engine, "0.60", user="u-1")
    spend(engine, "0.25", user="u-2")
    decision = ask(engine, "0.50", user="u-1")
    assert [(s.budget, s.spend, s.remaining) for s in decision.limits] == [
        ("daily", Decimal("0.60"), Decimal("0.40")),
        ("monthly", Decimal("0.60"), Decimal("9.40")),
        ("monthly again", Decimal("0.60"), Decimal("2.40")),
    ]
    assert not decision.allowed
    # recording keeps both periods' counters of both users in step
    record_batch(
        engine,
        [make_call(PROVIDER, "m-1", 100_000, 0, user="u-1"), make_call(PROVIDER, "m-1", 200_000, 0, user="u-2")],
    )
    assert [s.spend for s in ask(engine, "0", user="u-1").limits] == [Decimal("0.70")] * 3
    assert [s.spend for s in ask(engine, "0", user="u-2").limits] == [Decimal("0.45")] * 3
    day_and_month = {(k, s): spend for k, s, spend, _held in counters(engine)}
    assert set(day_and_month) == {("user", "u-1"), ("user", "u-2")}  # (two rows each: a day's and a month's)
    assert len(counters(engine)) == 4


def test_a_budget_added_after_calls_were_recorded_counts_them_and_keeps_counting(engine: Engine) -> None:
    add(engine, "org", "100")  # an enforced budget of another scope: recording keeps counters from the start
    spend(engine, "2", user="u-5", project="p")
    spend(engine, "1", user="u-6", project="p")
    add(engine, "per-project", "3.50", "each:project")
    add(engine, "openai-only", "10", f"provider:{PROVIDER}")
    first = ask(engine, "0.40", user="u-5", project="p", provider=PROVIDER)
    assert [(s.budget, s.spend) for s in first.limits] == [
        ("org", Decimal(3)),
        ("per-project", Decimal(3)),
        ("openai-only", Decimal(3)),
    ]
    assert first.allowed
    spend(engine, "0.25", user="u-6", project="p")
    second = ask(engine, "0.26", project="p", provider=PROVIDER)
    assert [s.spend for s in second.limits] == [Decimal("3.25")] * 3 and not second.allowed


def test_a_reprice_makes_shared_counters_sum_again(engine: Engine) -> None:
    from datetime import datetime

    from core.pricing.edits import PriceEdit, save_price
    from core.recording.audit import reprice_estimated

    add(engine, "per-user", "5", "each:user")
    add(engine, "u-1", "4", "user:u-1")
    spend(engine, "2", user="u-1")  # at the estimate: USD 1 per 1M tokens
    assert [s.spend for s in ask(engine, "1", user="u-1").limits] == [Decimal(2), Decimal(2)]
    since = datetime(2000, 1, 1, tzinfo=now_utc().tzinfo)
    save_price(
        engine,
        PriceEdit(provider=PROVIDER, model_name="m-1", input_per_1m="1.5", output_per_1m="1", effective_from=since),
    )  # type: ignore[arg-type]
    assert reprice_estimated(engine).repriced == 1
    assert [s.spend for s in ask(engine, "1", user="u-1").limits] == [Decimal(3), Decimal(3)]
