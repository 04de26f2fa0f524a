"""``POST /api/v1/check`` served by uvicorn, ``python -m core check``, and 20 reserving processes (issue 21)."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select
from streamlit_server import free_port

from core.budgets import detect
from core.budgets import service as budgets
from core.cli.main import main
from core.ingest.keys import create_key
from core.limits import service
from core.recording.calls import make_call, record_usage
from core.storage.limit_tables import LimitHold

CHECK = "/api/v1/check"
PROVIDER = "acme-llm"  # unpriced: the estimate step, USD 1 per 1M tokens


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from routes.standalone import app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-check", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def api(base_url: str, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    import routes.ingest

    monkeypatch.setenv("DATABASE_URL", db_url)
    key = create_key(engine, "checker", scope="check").key
    detect.forget_budgets()
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def add(engine: Engine, name: str, amount: str, scope: str = "all") -> None:
    spec = budgets.validate(name, amount, "month", scope, "UTC")
    budgets.add_budget(engine, budgets.BudgetSpec(**{**spec.__dict__, "enforce": True}))


def spend(engine: Engine, dollars: str, user: str | None = None) -> None:
    record_usage(engine, make_call(PROVIDER, "m", int(Decimal(dollars) * 1_000_000), 0, user=user))


def holds(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LimitHold)).scalar_one()


def test_the_issue_example_over_http(api: httpx.Client, engine: Engine) -> None:
    add(engine, "free-tier", "2", "each:user")
    spend(engine, "1.70", user="u-17")
    body = {"user": "u-17", "provider": "openai", "model": "gpt-4o", "estimated_cost": 0.50}
    denied = api.post(CHECK, json=body)
    assert denied.status_code == 200
    (limit,) = denied.json()["limits"]
    assert denied.json()["allowed"] is False
    assert {k: limit[k] for k in ("budget", "subject", "amount", "spend", "held", "remaining")} == {
        "budget": "free-tier",
        "subject": "u-17",
        "amount": "2.00",
        "spend": "1.70",
        "held": "0.00",
        "remaining": "0.30",
    }
    assert limit["period_end"].endswith("T00:00:00Z")
    allowed = api.post(CHECK, json={**body, "user": "u-18"})
    assert allowed.status_code == 200 and allowed.json()["allowed"] is True
    priced = api.post(
        CHECK,
        json={"user": "u-17", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100},
    )
    assert priced.json()["allowed"] is True  # USD 0.0035


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"estimated_cost": -0.5}', 400, "estimated_cost: '-0.5' is negative"),
        (b'{"estimated_cost": "NaN"}', 400, "estimated_cost: 'NaN' is not a finite number"),
        (b'{"estimated_cost": "x"}', 400, "estimated_cost: 'x' is not a number"),
        (b'{"estimated_cost": 1, "usr": "u"}', 400, "usr: not a field of a check"),
        (b'{"estimated_cost": 1, "reserve": true}', 400, "request_id: missing"),
        (b'{"estimated_cost": 1, "reserve": true, "request_id": "a b"}', 400, "request_id: 'a b' is not"),
        (b"not json", 400, "body: not JSON"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_holds_nothing(
    api: httpx.Client, engine: Engine, body: bytes, status: int, message: str
) -> None:
    add(engine, "cap", "5")
    answer = api.post(CHECK, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status and answer.json()["error"].startswith(message), answer.text
    assert holds(engine) == 0


def test_keys_are_required_and_a_recorded_request_id_cannot_be_held(api: httpx.Client, engine: Engine) -> None:
    assert httpx.post(str(api.base_url) + CHECK, json={"estimated_cost": "1"}).status_code == 401
    ingest_only = create_key(engine, "sender").key  # release 2's keys are ingest keys: not for checks
    refused = httpx.post(
        str(api.base_url) + CHECK, json={"estimated_cost": "1"}, headers={"Authorization": f"Bearer {ingest_only}"}
    )
    assert refused.status_code == 403 and "check" in refused.json()["error"], refused.text
    add(engine, "cap", "5")
    record_usage(engine, make_call(PROVIDER, "m", 10, 0, request_id="done"))
    answer = api.post(CHECK, json={"estimated_cost": "1", "reserve": True, "request_id": "done"})
    assert answer.status_code == 409 and "already recorded" in answer.json()["error"]


def test_twenty_simultaneous_http_reserves_of_one_dollar_against_five_left(api: httpx.Client, engine: Engine) -> None:
    add(engine, "cap", "6")
    spend(engine, "1")
    start = threading.Barrier(20)
    answers: list[bool] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=api.base_url, headers=dict(api.headers), timeout=60) as own:
            start.wait()
            reply = own.post(CHECK, json={"estimated_cost": "1", "reserve": True, "request_id": f"h-{i}"})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json()["allowed"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [False] * 15 + [True] * 5


# --- separate processes --------------------------------------------------------------------------


def _twenty_processes(target: Any, db_url: str) -> list[bool]:
    """``target(url, index, start, out)`` in 20 spawned processes released at once: what each put out."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(20)
    out = context.Queue()
    processes = [context.Process(target=target, args=(db_url, i, start, out)) for i in range(20)]
    for p in processes:
        p.start()
    results = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _reserve_in_a_process(url: str, index: int, start: Any, out: Any) -> None:
    import core.limits  # noqa: F401
    from core.limits import service as limits
    from core.storage.engine import make_engine

    engine = make_engine(url)
    request = limits.validate(engine, estimated_cost="1", reserve=True, request_id=f"p-{index}")
    limits.enforced_budgets(engine)  # warm: the processes race on the decision, not on start-up
    start.wait()
    out.put(limits.decide(engine, request).allowed)
    engine.dispose()


def test_twenty_processes_reserving_one_dollar_against_five_left_get_exactly_five(db_url: str, engine: Engine) -> None:
    detect.forget_budgets()
    add(engine, "cap", "7.5")
    spend(engine, "2.5")
    assert sorted(_twenty_processes(_reserve_in_a_process, db_url)) == [False] * 15 + [True] * 5
    state = service.check(engine, service.validate(engine, estimated_cost="0")).limits[0]
    assert state.held == Decimal(5) and state.remaining == 0


def _reserve_and_record_in_a_process(url: str, index: int, start: Any, out: Any) -> None:
    import core.limits  # noqa: F401
    from core.limits import service as limits
    from core.storage.engine import make_engine

    engine = make_engine(url)
    rid = f"q-{index}"
    request = limits.validate(engine, estimated_cost="1", reserve=True, request_id=rid, user="u-1")
    limits.enforced_budgets(engine)
    start.wait()
    allowed = limits.decide(engine, request).allowed
    if allowed:  # the call made and recorded: its real cost replaces the hold, in the recording's transaction
        record_usage(engine, make_call(PROVIDER, "m", 1_000_000, 0, user="u-1", request_id=rid))
    out.put(allowed)
    engine.dispose()


def test_twenty_processes_reserving_and_recording_one_users_allowance_get_exactly_five(
    db_url: str, engine: Engine
) -> None:
    """each:user: the spend is summed from the roll-ups at each reserve while other processes record the
    calls of theirs; never more allowed than the allowance has left."""
    detect.forget_budgets()
    add(engine, "per-user", "6", "each:user")
    spend(engine, "1", user="u-1")
    assert sorted(_twenty_processes(_reserve_and_record_in_a_process, db_url)) == [False] * 15 + [True] * 5
    (state,) = service.check(engine, service.validate(engine, estimated_cost="0", user="u-1")).limits
    assert (state.spend, state.held, state.remaining) == (Decimal(6), 0, 0)


# --- the command ---------------------------------------------------------------------------------


def test_the_check_command(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    detect.forget_budgets()
    argv = ["budgets", "add", "--name", "free-tier", "--amount", "2", "--period", "month", "--scope", "each:user"]
    assert main([*argv, "--enforce"]) == 0
    spend(engine, "1.70", user="u-17")
    capsys.readouterr()
    base = ["check", "--user", "u-17", "--provider", "openai", "--model", "gpt-4o"]
    assert main([*base, "--estimated-cost", "0.50", "--json"]) == 0  # a denial is an answer
    answer = json.loads(capsys.readouterr().out)
    assert answer["allowed"] is False and answer["limits"][0]["remaining"] == "0.30"
    assert main([*base, "--input-tokens", "1000", "--output-tokens", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["allowed"] is True
    assert main([*base, "--estimated-cost", "0.25", "--reserve", "--request-id", "r-1", "--hold-seconds", "60"]) == 0
    assert capsys.readouterr().out.startswith("allowed: $0.25, $0.25 held for r-1")
    assert main([*base, "--estimated-cost", "0.10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["limits"][0]["held"] == "0.25"
    for bad, said in [
        (["--estimated-cost", "-1"], "--estimated-cost: '-1' is negative"),
        (["--estimated-cost", "inf"], "--estimated-cost: 'inf' is not a finite number"),
        (["--estimated-cost", "1", "--reserve"], "--request-id: missing"),
        (["--estimated-cost", "1", "--reserve", "--request-id", "r-2", "--hold-seconds", "0"], "--hold-seconds: 0"),
        (["--input-tokens", "ten", "--output-tokens", "1"], "--input-tokens: 'ten'"),
    ]:
        assert main([*base, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}"), err
    assert holds(engine) == 1
