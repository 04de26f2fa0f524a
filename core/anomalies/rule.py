"""The anomaly rule of the contract (DESIGN.md, Release 3, "Anomalies"), as pure functions.

A key's spend in one complete UTC hour is compared with its spend in the same UTC hour of
each of the four previous weeks (a week without calls counts 0), summarised by the median
and the median absolute deviation (MAD). The hour is an anomaly when its spend is at least
USD 1, at least 3 times the median, and ``spend - median >= 6 * MAD``. Spending less than
usual never is. Hours of the week are UTC: a key whose peak follows a local clock moves by
an hour across a DST change, and the rule sees that hour as new (see the tests).

All arithmetic is exact: amounts are ``Decimal`` and every step runs in a context that
raises rather than rounds; the ratio alone is rounded, half-even to two decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction

from core.money import to_text

SCOPES = ("provider", "model", "user", "project")
BASELINE_WEEKS = 4
MIN_SPEND = Decimal(1)  # USD
MIN_MULTIPLE = 3  # spend >= 3 x median
MAD_FACTOR = 6  # spend - median >= 6 x MAD
MIN_AGE = timedelta(days=14)  # a key is judged for hours starting this long after its first call
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)

# Sums, halves and multiples of amounts with at most 12 decimals are exact at this precision;
# should one ever not be, Inexact raises instead of rounding silently.
_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation])


class AnomalyError(ValueError):
    """A value the rule cannot judge; the message names the field and the value."""


@dataclass(frozen=True)
class Verdict:
    """Why an hour is an anomaly: its spend, the baseline (median), the MAD, and spend / median."""

    spend: Decimal
    baseline: Decimal
    mad: Decimal
    ratio: Decimal | None  # None when the median is 0


@dataclass(frozen=True)
class Anomaly:
    """One anomalous hour of one key, as listed and sent: ``key`` is ``provider/model`` for the model scope."""

    scope: str
    key: str
    hour: datetime  # the hour's start, UTC
    spend: Decimal
    baseline: Decimal  # the median of the four previous weeks' same hour
    ratio: Decimal | None  # spend / baseline, two decimals; None when the baseline is 0

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise AnomalyError(f"scope: {self.scope!r} is not one of {', '.join(SCOPES)}")
        if not isinstance(self.key, str) or not self.key:
            raise AnomalyError(f"key: {self.key!r} is not a non-empty name")
        object.__setattr__(self, "hour", _utc_hour(self.hour, "hour"))
        _amount(self.spend, "spend")
        _amount(self.baseline, "baseline")
        if self.ratio is not None:
            _amount(self.ratio, "ratio")

    @classmethod
    def of(cls, scope: str, key: str, hour: datetime, verdict: Verdict) -> Anomaly:
        return cls(scope, key, hour, verdict.spend, verdict.baseline, verdict.ratio)


def _amount(value: object, field: str) -> Decimal:
    """A finite, non-negative amount given as ``Decimal`` or ``int``; a float is refused, never converted."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise AnomalyError(f"{field}: {value!r} is not a Decimal amount")
    amount = Decimal(value)
    if not amount.is_finite():
        raise AnomalyError(f"{field}: {value!r} is not a finite amount")
    if amount < 0:
        raise AnomalyError(f"{field}: {value!r} is negative")
    return amount


def _aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise AnomalyError(f"{field}: {value!r} is not a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise AnomalyError(f"{field}: {value.isoformat()} has no time zone (give it in UTC)")
    return value.astimezone(UTC)  # arithmetic below is then elapsed time, not a local wall clock


def _utc_hour(value: object, field: str) -> datetime:
    moment = _aware(value, field)
    if moment != _floor_hour(moment):
        raise AnomalyError(f"{field}: {moment.isoformat()} is not the start of an hour")
    return moment


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def median4(values: Sequence[Decimal]) -> Decimal:
    """The median; of an even count (four weeks), the mean of the middle two. Written for any count."""
    amounts = sorted(_amount(v, f"values[{i}]") for i, v in enumerate(values))
    if not amounts:
        raise AnomalyError("values: [] has no median (a week without calls counts 0, it is not left out)")
    middle = len(amounts) // 2
    if len(amounts) % 2:
        return amounts[middle]
    with localcontext(_EXACT):
        return (amounts[middle - 1] + amounts[middle]) / 2


def mad(values: Sequence[Decimal], median: Decimal) -> Decimal:
    """The median absolute deviation of ``values`` from ``median``."""
    centre = _amount(median, "median")
    with localcontext(_EXACT):
        deviations = [abs(_amount(v, f"values[{i}]") - centre) for i, v in enumerate(values)]
    return median4(deviations)


def ratio(spend: Decimal, median: Decimal) -> Decimal | None:
    """``spend / median`` to two decimals, rounded half-even with no rounding before; None when the median is 0."""
    amount = _amount(spend, "spend")
    centre = _amount(median, "median")
    if centre == 0:
        return None
    hundredths = round(Fraction(amount) * 100 / Fraction(centre))  # round() of a Fraction is half-even
    return Decimal(hundredths).scaleb(-2, _EXACT)


def judge(spend: Decimal, history: Sequence[Decimal]) -> Verdict | None:
    """The verdict on one hour's ``spend`` given the same hour in the four previous weeks; None when it is usual.

    ``history`` holds exactly four amounts, a week without calls as 0: leaving a quiet week
    out would make the baseline the busy weeks' alone.
    """
    amount = _amount(spend, "spend")
    weeks = [_amount(v, f"history[{i}]") for i, v in enumerate(history)]
    if len(weeks) != BASELINE_WEEKS:
        raise AnomalyError(
            f"history: {len(weeks)} values given; the rule needs the {BASELINE_WEEKS} previous weeks"
            " (a week without calls counts 0)"
        )
    centre = median4(weeks)
    spread = mad(weeks, centre)
    with localcontext(_EXACT):
        if amount < MIN_SPEND or amount < MIN_MULTIPLE * centre or amount - centre < MAD_FACTOR * spread:
            return None
    return Verdict(amount, centre, spread, ratio(amount, centre))


def baseline_hours(hour: datetime) -> list[datetime]:
    """The same UTC hour in each of the four previous weeks, the most recent first.

    Weeks are 168 hours of elapsed time: an hour given in a local zone is taken as the UTC
    instant it is, and no DST change is corrected for (the contract's hour of week is UTC).
    """
    start = _utc_hour(hour, "hour")
    return [start - WEEK * n for n in range(1, BASELINE_WEEKS + 1)]


def judged(hour: datetime, first_call_at: datetime | None) -> bool:
    """Whether a key is judged in ``hour``: only hours starting at least 14 days after its first call."""
    start = _utc_hour(hour, "hour")
    if first_call_at is None:  # no call at all: nothing to judge
        return False
    return start - _aware(first_call_at, "first_call_at") >= MIN_AGE


def complete_hours(since: datetime, now: datetime) -> list[datetime]:
    """The UTC hours starting at or after ``since`` that have ended by ``now``: the hours that can be judged."""
    low = _aware(since, "since")
    high = _aware(now, "now")
    start = _floor_hour(low)
    if start < low:
        start += HOUR
    hours = []
    while start + HOUR <= high:
        hours.append(start)
        start += HOUR
    return hours


def money_text(amount: Decimal) -> str:
    """An amount as an exact decimal string with at least cents: ``31.40``, ``2.00``, ``0.0025``, ``1.234567``."""
    text = to_text(_amount(amount, "amount"))
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def hour_text(hour: datetime) -> str:
    """A UTC hour as the contract prints it: ``2026-12-01T14:00:00Z``."""
    return _utc_hour(hour, "hour").strftime("%Y-%m-%dT%H:%M:%SZ")


def anomaly_json(a: Anomaly) -> dict[str, str | None]:
    """The contract's object: ``scope``, ``key``, ``hour``, ``spend``, ``baseline``, ``ratio`` (null: median 0)."""
    return {
        "scope": a.scope,
        "key": a.key,
        "hour": hour_text(a.hour),
        "spend": money_text(a.spend),
        "baseline": money_text(a.baseline),
        "ratio": None if a.ratio is None else format(a.ratio, "f"),
    }
