"""Reports from roll-ups: periods decompose exactly into buckets; local days in any zone sum exactly."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from sqlalchemy import Engine

from core.recording.calls import make_call, record_batch
from core.recording.rollups import QUARTER
from core.reporting import aggregates as reports

moments = st.integers(946_684_800 // QUARTER, 1_900_000_000 // QUARTER).map(lambda q: q * QUARTER)


def _calls_around_midnights(zone: str) -> list:
    """Calls one minute either side of each local midnight in June 2025, in ``zone``."""
    tz = ZoneInfo(zone)
    calls = []
    for day in range(1, 8):
        midnight = datetime(2025, 6, day, tzinfo=tz)
        for offset, tokens in ((-1, 1000), (1, 2000)):
            moment = (midnight + timedelta(minutes=offset)).astimezone(UTC)
            calls.append(make_call("huggingface", "openai/gpt-oss-120b:groq", tokens, 0, timestamp=moment.isoformat()))
    return calls


def test_local_days_are_exact_in_zones_with_odd_offsets(engine: Engine) -> None:
    for zone in ("Asia/Kathmandu", "Asia/Kolkata", "Australia/Adelaide", "America/St_Johns", "UTC"):
        tz = ZoneInfo(zone)
        calls = _calls_around_midnights(zone)
        record_batch(engine, calls)
        start = datetime(2025, 6, 2, tzinfo=tz)
        end = datetime(2025, 6, 7, tzinfo=tz)
        rows = reports.over_time(engine, start, end, tz, "day")
        by_day = {r.period: r.totals for r in rows}
        for day in (date(2025, 6, d) for d in range(2, 7)):
            expected = [c for c in calls if c.timestamp.astimezone(tz).date() == day]
            assert by_day[day].calls == len(expected) >= 2, (zone, day)
            assert by_day[day].cost_total == sum((Decimal(c.input_tokens) / 10**6 for c in expected), Decimal(0))
        # clean slate for the next zone
        from sqlalchemy import delete

        from core.storage.tables import UsageRecord, UsageRollup

        with engine.begin() as conn:
            conn.execute(delete(UsageRollup))
            conn.execute(delete(UsageRecord))


def test_weeks_and_months_in_a_zone_with_daylight_saving(engine: Engine) -> None:
    tz = ZoneInfo("Europe/Paris")
    # 00:30 local on 2025-03-31 (Monday, after the spring change) and 23:30 local on 2025-03-30 (Sunday)
    times = [datetime(2025, 3, 31, 0, 30, tzinfo=tz), datetime(2025, 3, 30, 23, 30, tzinfo=tz)]
    record_batch(engine, [make_call("acme", "m", 1_000_000, 0, timestamp=t.isoformat()) for t in times])
    start, end = datetime(2025, 3, 1, tzinfo=tz), datetime(2025, 5, 1, tzinfo=tz)
    weeks = {r.period: r.totals.calls for r in reports.over_time(engine, start, end, tz, "week") if r.totals.calls}
    assert weeks == {date(2025, 3, 24): 1, date(2025, 3, 31): 1}
    months = {r.period: r.totals.cost_total for r in reports.over_time(engine, start, end, tz, "month")}
    assert months == {date(2025, 3, 1): Decimal(2)}  # estimate: $1 per 1M tokens


def test_breakdowns_sort_by_spend_and_flag_estimates(engine: Engine) -> None:
    when = "2025-06-01T12:00:00Z"
    record_batch(
        engine,
        [
            make_call("openai", "gpt-4o", 1_000_000, 0, user="alice", timestamp=when),
            make_call("nobody", "mystery", 1_000_000, 0, timestamp=when),
        ],
    )
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC)
    by_user = reports.breakdown(engine, start, end, "user")
    assert [r.key for r in by_user] == ["alice", reports.NO_USER]
    total = reports.totals(engine, start, end)
    assert (total.calls, total.estimated_calls, total.estimated_cost) == (2, 1, Decimal(1))
    assert total.cost_total == Decimal("3.5")
    assert reports.totals(engine, end, end + timedelta(days=1)).calls == 0
