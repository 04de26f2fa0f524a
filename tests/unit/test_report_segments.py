"""How a period is cut into roll-up buckets and exact edges, in any zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.recording.rollups import DAY, HOUR, QUARTER, SIX_HOURS
from core.reporting import aggregates as reports

moments = st.integers(946_684_800 // QUARTER, 1_900_000_000 // QUARTER).map(lambda q: q * QUARTER)


@given(a=moments, length=st.integers(0, 200 * DAY // QUARTER))
def test_segments_tile_the_period_exactly_with_aligned_buckets(a: int, length: int) -> None:
    b = a + length * QUARTER
    runs = reports.segments(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC))
    position = a
    for grain, lo, hi in runs:
        assert lo == position and lo < hi
        assert lo % grain == 0 and hi % grain == 0
        position = hi
    assert position == b or (a == b and runs == [])
    assert len(runs) <= 7
    # long periods are read mostly from day buckets: at most 3 quarters, 5 hours and 3 six-hour buckets per edge
    assert sum((hi - lo) // grain for grain, lo, hi in runs) <= length // (DAY // QUARTER) + 2 * (3 + 5 + 3) + 1


def test_a_local_day_in_a_half_hour_zone_reads_few_buckets() -> None:
    # Asia/Kolkata, 2025-06-02: 2025-06-01 18:30 UTC to 2025-06-02 18:30 UTC
    start, end = datetime(2025, 6, 1, 18, 30, tzinfo=UTC), datetime(2025, 6, 2, 18, 30, tzinfo=UTC)
    runs = reports.segments(start, end)
    assert [grain for grain, _lo, _hi in runs] == [QUARTER, HOUR, SIX_HOURS, QUARTER]
    assert sum((hi - lo) // grain for grain, lo, hi in runs) == 2 + 5 + 3 + 2


def test_segments_round_partial_quarters_outwards() -> None:
    start = datetime(2025, 1, 1, 10, 7, tzinfo=UTC)
    end = datetime(2025, 1, 1, 10, 52, tzinfo=UTC)
    ten = int(start.timestamp()) - 7 * 60
    # 10:07-10:52 widens to 10:00-11:00: one whole hour bucket
    assert reports.segments(start, end) == [(HOUR, ten, ten + HOUR)]
    assert reports.segments(start, start + timedelta(minutes=20)) == [(QUARTER, ten, ten + 2 * QUARTER)]
