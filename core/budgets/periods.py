"""A budget's periods: the calendar day, ISO week (from Monday) or month in its zone, as UTC ranges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from core.times import local_midnight, next_period, period_start

PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Period:
    """One period: its local first day, and its UTC bounds [start, end)."""

    label: date
    start: datetime
    end: datetime

    def fraction_elapsed(self, now: datetime) -> float:
        """How much of the period has passed at ``now`` (0 before, 1 after); a ratio for display only."""
        length = (self.end - self.start).total_seconds()
        done = (now - self.start).total_seconds()
        return min(max(done / length, 0.0), 1.0)


def period_of(moment: datetime, period: str, tz: ZoneInfo) -> Period:
    """The period containing ``moment``: its local start day, and [local midnight, next local midnight) in UTC."""
    label = period_start(moment.astimezone(tz).date(), period)
    return Period(label, local_midnight(label, tz), local_midnight(next_period(label, period), tz))


def periods_between(start: datetime, end: datetime, period: str, tz: ZoneInfo) -> list[Period]:
    """Every whole period overlapping [start, end), in order (first and last not clipped)."""
    if end <= start:
        return []
    found = [period_of(start, period, tz)]
    while found[-1].end < end:
        label = next_period(found[-1].label, period)
        found.append(Period(label, found[-1].end, local_midnight(next_period(label, period), tz)))
    return found
