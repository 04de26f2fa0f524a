"""Roll-ups equal the raw sums of the logs exactly: after batches, duplicates and a rebuild, in any time zone."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update

from core.recording.calls import make_call, record_batch
from core.recording.rollups import check_rollups, rebuild_rollups
from core.reporting import aggregates as reports
from core.storage.tables import UsageRecord, UsageRollup

MODELS = [
    ("huggingface", "openai/gpt-oss-120b:groq"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("nobody", "unknown-model"),  # priced by the estimate: counted in estimated_calls
]
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _calls(count: int, start: datetime, span: timedelta, seed: int, prefix: str | None = None) -> list:
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        provider, model = rng.choice(MODELS)
        tokens_in = rng.randint(0, 50_000)
        moment = start + timedelta(seconds=rng.randint(0, int(span.total_seconds())))
        calls.append(
            make_call(
                provider,
                model,
                tokens_in,
                rng.randint(0, 20_000),
                rng.randint(0, tokens_in) if provider == "openai" else 0,
                user=rng.choice(["alice", "bob", None]),
                request_id=f"{prefix}-{i}" if prefix else None,
                timestamp=moment.isoformat(),
            )
        )
    return calls


def _raw(engine: Engine) -> list[UsageRecord]:
    with engine.connect() as conn:
        return list(conn.execute(select(UsageRecord.timestamp, UsageRecord.cost_total, UsageRecord.matched_by)))


def _assert_totals_equal_raw(engine: Engine, expected_calls: int) -> None:
    rows = _raw(engine)
    assert len(rows) == expected_calls
    check = check_rollups(engine)
    assert check.matches, (check.raw, check.rolled)
    total = reports.totals(engine, *EVERYTHING)
    assert total.calls == expected_calls
    assert total.cost_total == sum((r.cost_total for r in rows), Decimal(0))
    assert total.estimated_calls == sum(1 for r in rows if r.matched_by == "estimate")
    assert total.estimated_cost == sum((r.cost_total for r in rows if r.matched_by == "estimate"), Decimal(0))


def test_rollups_equal_raw_sums_after_batches_and_duplicates(engine: Engine) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    first = _calls(300, start, timedelta(days=20), seed=1, prefix="a")
    assert record_batch(engine, first[:150]).recorded == 150
    assert record_batch(engine, first[150:]).recorded == 150
    # the same request ids again (and twice within one batch) add nothing anywhere
    again = record_batch(engine, first[:100] + first[:100])
    assert (again.recorded, again.duplicates) == (0, 200)
    # calls without request ids, interleaved in time with the first ones
    assert record_batch(engine, _calls(200, start, timedelta(days=20), seed=2)).recorded == 200
    _assert_totals_equal_raw(engine, 500)


def test_rebuild_restores_rollups_that_went_wrong(engine: Engine) -> None:
    record_batch(engine, _calls(250, datetime(2025, 5, 1, tzinfo=UTC), timedelta(days=9), seed=3, prefix="r"))
    days = (datetime(2025, 4, 30, tzinfo=UTC), datetime(2025, 5, 12, tzinfo=UTC))
    before = reports.over_time(engine, *days, tz=ZoneInfo("Asia/Kolkata"), by="model")
    with engine.begin() as conn:
        conn.execute(update(UsageRollup).values(calls=UsageRollup.calls + 1))
    assert not check_rollups(engine).matches
    assert rebuild_rollups(engine) == 250
    _assert_totals_equal_raw(engine, 250)
    assert reports.over_time(engine, *days, tz=ZoneInfo("Asia/Kolkata"), by="model") == before


@pytest.mark.parametrize(
    ("zone_name", "first_day", "days"),
    [
        ("Asia/Kathmandu", date(2025, 6, 1), 4),  # +5:45
        ("Australia/Adelaide", date(2025, 4, 4), 4),  # +10:30 -> +9:30 on 6 April
        ("Australia/Adelaide", date(2025, 10, 3), 4),  # +9:30 -> +10:30 on 5 October
    ],
)
def test_local_days_in_odd_zones_equal_raw_sums(engine: Engine, zone_name: str, first_day: date, days: int) -> None:
    tz = ZoneInfo(zone_name)
    start = datetime.combine(first_day, datetime.min.time(), tz).astimezone(UTC) - timedelta(hours=2)
    calls = _calls(400, start, timedelta(days=days, hours=4), seed=4)
    # calls right at and next to each local midnight, where a wrong offset would move them
    for n in range(days + 1):
        midnight = datetime.combine(first_day + timedelta(days=n), datetime.min.time(), tz)
        for delta in (-1, 0, 1, 899, 900):
            moment = (midnight + timedelta(seconds=delta)).isoformat()
            calls.append(make_call("openai", "gpt-4o", 1000 + delta, 10, timestamp=moment))
    record_batch(engine, calls)
    period = (
        datetime.combine(first_day, datetime.min.time(), tz),
        datetime.combine(first_day + timedelta(days=days), datetime.min.time(), tz),
    )
    rows = reports.over_time(engine, *period, tz=tz, granularity="day")
    expected: dict[date, list] = {}
    for r in _raw(engine):
        local_day = r.timestamp.astimezone(tz).date()
        if first_day <= local_day < first_day + timedelta(days=days):
            entry = expected.setdefault(local_day, [0, Decimal(0)])
            entry[0] += 1
            entry[1] += r.cost_total
    assert {row.period: [row.totals.calls, row.totals.cost_total] for row in rows} == expected
    assert len(expected) == days
