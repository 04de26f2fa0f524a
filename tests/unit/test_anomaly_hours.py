"""Which hours a detection pass judges (no database): new complete hours, hours ``--since`` asks for, and
hours whose calls changed behind the state, with the same hour of the four weeks after (their baseline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.anomalies.service import hours_to_judge
from core.anomalies.store import State

NOW = datetime(2026, 12, 5, 10, 0, 5, tzinfo=UTC)
H = timedelta(hours=1)


def test_a_first_pass_judges_the_complete_hours_of_the_last_7_days() -> None:
    hours = hours_to_judge(State(), set(), NOW, None)
    assert min(hours) == datetime(2026, 11, 28, 10, tzinfo=UTC) and max(hours) == datetime(2026, 12, 5, 9, tzinfo=UTC)
    assert len(hours) == 7 * 24


def test_then_only_the_hour_that_just_ended() -> None:
    state = State(NOW - timedelta(days=7), datetime(2026, 12, 5, 9, tzinfo=UTC), 10, 0)
    assert hours_to_judge(state, set(), NOW, None) == {datetime(2026, 12, 5, 9, tzinfo=UTC)}
    state = State(NOW - timedelta(days=7), datetime(2026, 12, 5, 10, tzinfo=UTC), 10, 0)
    assert hours_to_judge(state, set(), NOW, None) == set()  # 10:00 is not over


def test_a_changed_hour_is_judged_again_with_the_same_hour_of_the_weeks_after_that_were_judged() -> None:
    through = datetime(2026, 12, 5, 10, tzinfo=UTC)
    state = State(datetime(2026, 11, 1, tzinfo=UTC), through, 10, 0)
    changed = datetime(2026, 11, 10, 14, tzinfo=UTC)
    got = hours_to_judge(state, {changed}, NOW, None)
    assert got == {changed + timedelta(weeks=n) for n in range(4)}  # +4 weeks (Dec 8) is not judged yet
    before = datetime(2026, 10, 20, 14, tzinfo=UTC)  # before anything judged: only its weeks inside the range
    assert hours_to_judge(state, {before}, NOW, None) == {before + timedelta(weeks=n) for n in (2, 3, 4)}


def test_since_before_the_judged_range_judges_the_hours_in_between() -> None:
    state = State(datetime(2026, 11, 28, 10, tzinfo=UTC), datetime(2026, 12, 5, 10, tzinfo=UTC), 10, 0)
    since = datetime(2026, 11, 27, tzinfo=UTC)
    got = hours_to_judge(state, set(), NOW, since)
    assert got == {since + H * i for i in range(34)}
