"""PostgreSQL: a reserve that waits for a counter's lock while a recording settles a hold on it counts that
recording's call.

A reserve reads an ``each:user`` budget's spend from the roll-ups in the statement that locks the counters. That
statement's snapshot is taken before it waits for a lock; the counter row it then locks is the one the
recording committed (its hold taken off), but the roll-ups it read are from before the recording. The reserve
must see that the counter changed while it waited and read the spend again: else it counts the call neither as
a hold nor as spend, and allows more than the allowance. The recording is paused, its transaction open with the
counter locked, until the reserve is seen waiting for that lock (``pg_stat_activity``)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pg_schema import PG_URL, own_schema
from sqlalchemy import Engine, event, text

import core.limits  # noqa: F401 - the counters kept on recording
from core.budgets import detect
from core.budgets import service as budgets
from core.limits import service
from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database

pytestmark = pytest.mark.skipif(PG_URL is None, reason="needs TEST_DATABASE_URL (PostgreSQL)")

PROVIDER = "acme-llm"  # no price row: every token at USD 1 per 1M, so N tokens cost N / 1,000,000 dollars


@pytest.fixture
def url() -> Iterator[str]:
    with own_schema("sb_reserve_wait") as made:
        engine = make_engine(made)
        upgrade_database(engine)
        engine.dispose()
        detect.forget_budgets()
        yield made
        detect.forget_budgets()


def _waiting_for_a_lock(engine: Engine, application: str) -> bool:
    with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'"
        )
        return bool(conn.execute(query, {"name": application}).scalar_one())


def test_a_reserve_that_waited_for_a_recording_counts_its_calls_cost(url: str) -> None:
    application = f"sb-reserve-{uuid.uuid4().hex[:8]}"
    reserving = make_engine(f"{url}&application_name={application}")
    recording = make_engine(url)
    watching = make_engine(url)
    spec = budgets.validate("per-user", "1", "month", "each:user", "UTC", None, None, None)
    budgets.add_budget(reserving, budgets.BudgetSpec(**{**spec.__dict__, "enforce": True}))

    def reserve(estimate: str, rid: str) -> service.Decision:
        request = service.validate(reserving, estimated_cost=estimate, user="u-1", reserve=True, request_id=rid)
        return service.decide(reserving, request)

    assert reserve("0.50", "first").allowed  # 0.50 held on u-1's counter

    locked, go = threading.Event(), threading.Event()

    @event.listens_for(recording, "after_cursor_execute")
    def pause(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        # the recording's counter upsert: the counter is locked, the hold settled, the roll-ups written; not committed
        if statement.lstrip().startswith("INSERT INTO limit_counters") and "DO UPDATE" in statement:
            locked.set()
            go.wait(30)

    # the call of the first reserve costs 0.90: recorded, its hold replaced by its cost
    call = make_call(PROVIDER, "m-1", 900_000, 0, user="u-1", request_id="first")
    recorder = threading.Thread(target=record_usage, args=(recording, call))
    recorder.start()
    assert locked.wait(30), "the recording never reached the counter"
    decided: list[service.Decision] = []
    reserver = threading.Thread(target=lambda: decided.append(reserve("0.20", "second")))
    reserver.start()
    deadline = time.monotonic() + 30
    while not _waiting_for_a_lock(watching, application):
        assert time.monotonic() < deadline, "the reserve never waited for the recording's lock"
        time.sleep(0.01)
    go.set()
    recorder.join(30)
    reserver.join(30)

    # 0.90 spent, nothing held: 0.20 more would be 1.10 of a 1.00 allowance
    (state,) = decided[0].limits
    assert (decided[0].allowed, state.spend, state.held, state.remaining) == (False, Decimal("0.9"), 0, Decimal("0.1"))
    for engine in (reserving, recording, watching):
        engine.dispose()
