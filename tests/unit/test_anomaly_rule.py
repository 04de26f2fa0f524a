"""The anomaly rule (DESIGN.md, Release 3, "Anomalies") on generated weeks of hourly spend, with no database."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.anomalies.rule import (
    Anomaly,
    AnomalyError,
    Verdict,
    anomaly_json,
    baseline_hours,
    complete_hours,
    judge,
    judged,
    mad,
    median4,
    money_text,
    ratio,
)

D = Decimal
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
PARIS = ZoneInfo("Europe/Paris")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def detect(
    series: Mapping[datetime, Decimal], hours: list[datetime], first_call_at: datetime | None
) -> dict[datetime, Verdict]:
    """What a detector does with one key's hourly spends: hours it may judge, quiet weeks as 0."""
    found = {}
    for hour in hours:
        if not judged(hour, first_call_at):
            continue
        verdict = judge(series.get(hour, D(0)), [series.get(h, D(0)) for h in baseline_hours(hour)])
        if verdict is not None:
            found[hour] = verdict
    return found


# --- the issue's example --------------------------------------------------------------------------


def test_the_issue_example_batch_7_on_tuesday_14h() -> None:
    tuesday = utc(2026, 12, 1, 14)
    # about $2 every Tuesday 14:00-15:00 for five weeks; only the four before this Tuesday count
    usual = [D("2.05"), D("1.90"), D("2.10"), D("1.90"), D("2.10")]
    series = {tuesday - WEEK * (5 - n): spend for n, spend in enumerate(usual)}
    series[tuesday] = D("31.40")
    first_call = min(series)

    found = detect(series, [tuesday, tuesday + HOUR, tuesday - WEEK], first_call)

    assert list(found) == [tuesday]
    verdict = found[tuesday]
    assert (verdict.baseline, verdict.mad) == (D("2.00"), D("0.10"))
    text = json.dumps(anomaly_json(Anomaly.of("user", "batch-7", tuesday, verdict)))
    assert json.loads(text, parse_float=Decimal) == {
        "scope": "user",
        "key": "batch-7",
        "hour": "2026-12-01T14:00:00Z",
        "spend": "31.40",
        "baseline": "2.00",
        "ratio": "15.70",
    }


# --- generated weeks -------------------------------------------------------------------------------

MONDAY = utc(2026, 11, 2)  # week 0 starts here; weeks 0-3 are the baseline of week 4
JUDGED_WEEK = [MONDAY + 4 * WEEK + HOUR * h for h in range(168)]

levels = st.decimals(min_value=D("1.00"), max_value=D("500.00"), places=2)
quiet_levels = st.decimals(min_value=D("0"), max_value=D("0.30"), places=2)
factors = st.lists(st.decimals(min_value=D("0.90"), max_value=D("1.10"), places=2), min_size=5, max_size=5)


def weekly(
    peak_hour: int, peak: Decimal, quiet: Decimal, peak_factors: list[Decimal], quiet_factors: list[Decimal]
) -> dict[datetime, Decimal]:
    """Five weeks of one key: a weekly peak hour, quiet hours at ``quiet`` (an hour at 0 has no calls), ±10% a week."""
    series: dict[datetime, Decimal] = {}
    for week in range(5):
        for h in range(168):
            level = peak * peak_factors[week] if h == peak_hour else quiet * quiet_factors[week]
            if level:
                series[MONDAY + week * WEEK + h * HOUR] = level
    return series


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 167), levels, quiet_levels, factors, factors)
def test_a_normal_week_with_its_weekly_peak_has_no_anomaly(
    peak_hour: int, peak: Decimal, quiet: Decimal, peak_f: list[Decimal], quiet_f: list[Decimal]
) -> None:
    series = weekly(peak_hour, peak, quiet, peak_f, quiet_f)
    assert detect(series, JUDGED_WEEK, MONDAY) == {}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 167), st.integers(0, 167), levels, quiet_levels, factors, factors, st.integers(10, 100))
def test_a_spike_is_found_in_its_hour_and_nowhere_else(
    peak_hour: int,
    spike_hour: int,
    peak: Decimal,
    quiet: Decimal,
    peak_f: list[Decimal],
    quiet_f: list[Decimal],
    times: int,
) -> None:
    series = weekly(peak_hour, peak, quiet, peak_f, quiet_f)
    hour = JUDGED_WEEK[spike_hour]
    series[hour] = series.get(hour, D(0)) * times + 1  # a retry loop: ten times the usual and a dollar more

    found = detect(series, JUDGED_WEEK, MONDAY)

    assert list(found) == [hour]
    usual = sorted(series.get(h, D(0)) for h in baseline_hours(hour))
    verdict = found[hour]
    assert verdict.baseline == (usual[1] + usual[2]) / 2
    assert verdict.ratio is None if verdict.baseline == 0 else verdict.ratio is not None and verdict.ratio >= 3


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 167), levels, quiet_levels, factors, factors)
def test_a_drop_is_never_an_anomaly(
    peak_hour: int, peak: Decimal, quiet: Decimal, peak_f: list[Decimal], quiet_f: list[Decimal]
) -> None:
    series = weekly(peak_hour, peak, quiet, peak_f, quiet_f)
    for hour in JUDGED_WEEK:  # the whole judged week spends nothing: the key stopped
        series.pop(hour, None)
    assert detect(series, JUDGED_WEEK, MONDAY) == {}


def test_a_young_key_is_not_judged_until_14_days_after_its_first_call() -> None:
    first_call = utc(2026, 11, 2, 9, 30)
    series = {first_call.replace(minute=0): D("0.50")}
    hours = [utc(2026, 11, 16, 8), utc(2026, 11, 16, 9), utc(2026, 11, 16, 10)]
    for hour in hours:
        series[hour] = D("40.00")  # far above anything before

    found = detect(series, hours, first_call)

    # 08:00 and 09:00 start less than 14 days after 09:30 on the 2nd; 10:00 is the first hour judged
    assert list(found) == [utc(2026, 11, 16, 10)]
    assert judged(utc(2026, 11, 16, 10), utc(2026, 11, 2, 10))  # exactly 14 days: judged
    assert not judged(utc(2026, 11, 16, 10), utc(2026, 11, 2, 10, 0, 0, 1))
    assert not judged(utc(2026, 11, 16, 10), None)


def test_a_week_without_calls_counts_zero_not_left_out() -> None:
    hour = utc(2026, 11, 30, 14)
    # the key spent $10 in this hour four weeks ago, and nothing in it since (its other calls are elsewhere)
    series = {hour - 4 * WEEK: D("10.00"), hour - 5 * WEEK - HOUR: D("0.20"), hour: D("1.00")}

    found = detect(series, [hour], min(series))

    # weeks: 0, 0, 0, 10 -> median 0 and MAD 0: one dollar is unusual (with the quiet weeks left out it would not be)
    assert anomaly_json(Anomaly.of("project", "search", hour, found[hour])) == {
        "scope": "project",
        "key": "search",
        "hour": "2026-11-30T14:00:00Z",
        "spend": "1.00",
        "baseline": "0.00",
        "ratio": None,
    }
    assert judge(D("1.00"), [D("10.00")] * 4) is None
    with pytest.raises(AnomalyError, match=r"^history: 1 values given; the rule needs the 4 previous weeks"):
        judge(D("1.00"), [D("10.00")])


def test_mad_zero_any_spend_meeting_the_first_two_conditions() -> None:
    steady = [D("2.00")] * 4
    verdict = judge(D("6.00"), steady)
    assert verdict == Verdict(D("6.00"), D("2.00"), D(0), D("3.00"))
    assert judge(D("5.99"), steady) is None
    assert judge(D("1.00"), [D(0)] * 4) == Verdict(D("1.00"), D(0), D(0), None)
    assert json.loads(json.dumps(anomaly_json(Anomaly.of("provider", "groq", utc(2026, 1, 1), verdict))))["ratio"] == (
        "3.00"
    )


def test_a_higher_baseline_week_can_make_an_anomaly_so_later_weeks_are_judged_again() -> None:
    # a back-dated import adds $5 to one quiet week: the median rises, but the MAD falls faster
    assert judge(D(34), [D(0), D(0), D(10), D(10)]) is None  # median 5, MAD 5: 34 - 5 < 30
    assert judge(D(34), [D(0), D(5), D(10), D(10)]) == Verdict(D(34), D("7.5"), D("2.5"), D("4.53"))


# --- boundaries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spend", "history", "expected"),
    [
        # USD 1: the binding condition when the baseline is small
        ("1", ["0", "0", "0", "0"], None),
        ("0.999999999999", ["0", "0", "0", "0"], "no"),
        ("1", ["0.25", "0.25", "0.25", "0.25"], "4.00"),
        ("0.99", ["0.25", "0.25", "0.25", "0.25"], "no"),
        # exactly 3 x the median (MAD 0)
        ("3", ["1", "1", "1", "1"], "3.00"),
        ("2.999999999999", ["1", "1", "1", "1"], "no"),
        # exactly 6 x MAD: median 2, MAD 1, so 8 and not 6 is the threshold
        ("8", ["1", "1", "3", "3"], "4.00"),
        ("7.999999999999", ["1", "3", "1", "3"], "no"),
    ],
)
def test_boundaries_are_inclusive(spend: str, history: list[str], expected: str | None) -> None:
    verdict = judge(D(spend), [D(v) for v in history])
    if expected == "no":
        assert verdict is None
    else:
        assert verdict is not None
        assert verdict.ratio == (None if expected is None else D(expected))


# --- median, MAD, ratio ----------------------------------------------------------------------------


def test_median_of_four_is_the_mean_of_the_middle_two_and_general_for_n() -> None:
    assert median4([D(4), D(1), D(3), D(2)]) == D("2.5")
    assert median4([D(3), D(1), D(2)]) == D(2)
    assert median4([D(5)]) == D(5)
    assert median4([D("0.000000000001"), D("0.000000000002")]) == D("0.0000000000015")  # exact, not rounded
    with pytest.raises(AnomalyError, match=r"^values: \[\] has no median"):
        median4([])
    assert mad([D("1.90"), D("2.10"), D("1.90"), D("2.10")], D("2.00")) == D("0.10")
    assert mad([D(1), D(1), D(3), D(3)], D(2)) == D(1)
    assert mad([D(0), D(0), D(0), D(10)], D(0)) == D(0)


@pytest.mark.parametrize(
    ("spend", "median", "expected"),
    [
        ("31.40", "2.00", "15.70"),
        ("10", "3", "3.33"),
        ("20", "3", "6.67"),
        ("1.005", "1", "1.00"),  # half-even: down to the even cent
        ("1.015", "1", "1.02"),  # half-even: up to the even cent
        ("1.025", "1", "1.02"),
        ("5", "0", None),
    ],
)
def test_ratio_two_decimals_half_even(spend: str, median: str, expected: str | None) -> None:
    value = ratio(D(spend), D(median))
    assert (None if value is None else format(value, "f")) == expected


amounts = st.one_of(
    st.sampled_from([D(0), D(1), D(2), D(3), D("0.5")]),
    st.decimals(min_value=D(0), max_value=D(100), places=2),
    st.decimals(min_value=D(0), max_value=D(10_000), places=12),
)


def oracle(spend: Decimal, history: list[Decimal]) -> tuple[Fraction, Fraction] | None:
    """The contract read literally, with fractions and the standard library's median."""
    s, weeks = Fraction(spend), [Fraction(v) for v in history]
    m = statistics.median(weeks)
    spread = statistics.median([abs(v - m) for v in weeks])
    if s >= 1 and s >= 3 * m and s - m >= 6 * spread:
        return m, spread
    return None


@settings(max_examples=300, deadline=None)
@given(amounts, st.lists(amounts, min_size=4, max_size=4))
def test_judge_agrees_with_the_contract_read_literally(spend: Decimal, history: list[Decimal]) -> None:
    verdict = judge(spend, history)
    expected = oracle(spend, history)
    if expected is None:
        assert verdict is None
        return
    assert verdict is not None
    assert (Fraction(verdict.baseline), Fraction(verdict.mad)) == expected
    if verdict.baseline == 0:
        assert verdict.ratio is None
    else:
        wide = Context(prec=200).divide(spend, verdict.baseline)
        assert verdict.ratio == wide.quantize(D("0.01"), rounding=ROUND_HALF_EVEN)
        assert verdict.ratio >= 3


@settings(max_examples=200, deadline=None)
@given(amounts, st.lists(amounts, min_size=4, max_size=4), amounts, st.permutations(range(4)))
def test_less_is_never_more_is_still_and_order_does_not_matter(
    spend: Decimal, history: list[Decimal], extra: Decimal, order: list[int]
) -> None:
    median = median4(history)
    assert judge(min(spend, median), history) is None  # spending no more than usual never is an anomaly
    if judge(spend, history) is not None:
        assert judge(spend + extra, history) is not None  # more of an unusual spend stays unusual
    assert judge(spend, [history[i] for i in order]) == judge(spend, history)


# --- hours -----------------------------------------------------------------------------------------


def test_baseline_hours_are_the_same_utc_hour_in_the_four_previous_weeks() -> None:
    assert baseline_hours(utc(2026, 12, 1, 14)) == [
        utc(2026, 11, 24, 14),
        utc(2026, 11, 17, 14),
        utc(2026, 11, 10, 14),
        utc(2026, 11, 3, 14),
    ]
    # an hour given in a local zone is the UTC instant it is: 168 hours back, not the same wall clock
    local = datetime(2026, 4, 7, 9, tzinfo=PARIS)  # 07:00Z, nine days after Paris moved to summer time
    assert baseline_hours(local) == [utc(2026, 3, 31, 7), utc(2026, 3, 24, 7), utc(2026, 3, 17, 7), utc(2026, 3, 10, 7)]
    assert [h.astimezone(PARIS).hour for h in baseline_hours(local)] == [9, 8, 8, 8]


def tuesdays_at_nine_paris(first: datetime, weeks: int) -> dict[datetime, Decimal]:
    """A key whose only spend is $5.00 on Tuesdays 09:00-10:00 Paris time."""
    day = first.date()
    return {
        datetime(d.year, d.month, d.day, 9, tzinfo=PARIS).astimezone(UTC): D("5.00")
        for d in (day + timedelta(weeks=n) for n in range(weeks))
    }


@pytest.mark.parametrize(
    ("first_tuesday", "moved_to"),
    [
        # Paris moves to summer time on 2026-03-29: 09:00 local is 08:00Z before, 07:00Z after
        (utc(2026, 2, 24, 8), [utc(2026, 3, 31, 7), utc(2026, 4, 7, 7)]),
        # and back on 2026-10-25: 07:00Z before, 08:00Z after
        (utc(2026, 9, 22, 7), [utc(2026, 10, 27, 8), utc(2026, 11, 3, 8)]),
    ],
)
def test_a_local_peak_that_moves_an_hour_in_utc_across_dst_is_flagged_twice(
    first_tuesday: datetime, moved_to: list[datetime]
) -> None:
    series = tuesdays_at_nine_paris(first_tuesday, 9)
    hours = complete_hours(first_tuesday, first_tuesday + 9 * WEEK)

    found = detect(series, hours, first_tuesday)

    # Hour of week is UTC (the contract): the ordinary 09:00 peak lands in a UTC hour whose four
    # previous weeks were empty, twice (weeks 0,0,0,0 then 5,0,0,0: median 0), then the baseline has
    # caught up (5,5,0,0: median 2.5, and 5 < 3 x 2.5). The hour it left spends 0: a drop, not flagged.
    assert list(found) == moved_to
    assert all(v == Verdict(D("5.00"), D(0), D(0), None) for v in found.values())
    assert {h.astimezone(PARIS).hour for h in found} == {9}


def test_complete_hours_are_the_hours_ended_by_now() -> None:
    day = utc(2026, 12, 1)
    assert complete_hours(day, utc(2026, 12, 1, 3, 30)) == [day, day + HOUR, day + 2 * HOUR]
    assert complete_hours(day, utc(2026, 12, 1, 3)) == [day, day + HOUR, day + 2 * HOUR]  # 02:00 just ended
    assert complete_hours(utc(2026, 12, 1, 0, 30), utc(2026, 12, 1, 3)) == [day + HOUR, day + 2 * HOUR]
    assert complete_hours(day, utc(2026, 12, 1, 0, 59, 59)) == []  # the current hour is never judged
    assert complete_hours(utc(2026, 12, 2), day) == []
    assert len(complete_hours(day - 7 * timedelta(days=1), day)) == 168


# --- JSON and bad input ----------------------------------------------------------------------------


def test_json_has_exactly_the_contract_keys_and_exact_amounts() -> None:
    anomaly = Anomaly(
        "model",
        "openai/gpt-4o",
        datetime(2026, 12, 1, 15, tzinfo=PARIS),
        D("1234.567890123456"),
        D("0.0000000000015"),
        D("823045260082304.00"),
    )
    out = json.loads(json.dumps(anomaly_json(anomaly)), parse_float=Decimal)
    assert out == {
        "scope": "model",
        "key": "openai/gpt-4o",
        "hour": "2026-12-01T14:00:00Z",
        "spend": "1234.567890123456",
        "baseline": "0.0000000000015",
        "ratio": "823045260082304.00",
    }
    assert anomaly.ratio == ratio(anomaly.spend, anomaly.baseline)  # no exponent however large
    assert [money_text(D(v)) for v in ("31.4", "7", "0.0025", "0")] == ["31.40", "7.00", "0.0025", "0.00"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: judge(2.5, [D(1)] * 4), r"^spend: 2\.5 is not a Decimal amount$"),  # type: ignore[arg-type]
        (lambda: judge(D(-1), [D(1)] * 4), r"^spend: Decimal\('-1'\) is negative$"),
        (lambda: judge(D("NaN"), [D(1)] * 4), r"^spend: Decimal\('NaN'\) is not a finite amount$"),
        (lambda: judge(D(5), [D(1), D(1), 1.5, D(1)]), r"^history\[2\]: 1\.5 is not a Decimal amount$"),  # type: ignore[list-item]
        (lambda: baseline_hours(datetime(2026, 12, 1, 14)), r"^hour: 2026-12-01T14:00:00 has no time zone"),
        (lambda: baseline_hours(utc(2026, 12, 1, 14, 30)), r"^hour: 2026-12-01T14:30:00\+00:00 is not the start of"),
        (lambda: complete_hours("2026-12-01", utc(2026, 12, 2)), r"^since: '2026-12-01' is not a datetime$"),  # type: ignore[arg-type]
        (lambda: Anomaly("team", "x", utc(2026, 12, 1), D(1), D(0), None), r"^scope: 'team' is not one of provider"),
        (lambda: Anomaly("user", "", utc(2026, 12, 1), D(1), D(0), None), r"^key: '' is not a non-empty name$"),
    ],
)
def test_bad_input_is_named_in_one_line(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnomalyError, match=message):
        call()
