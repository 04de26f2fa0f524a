"""Comparisons and projections for the Overview KPIs; pure functions, exact Decimals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.reporting.aggregates import Where, totals
from core.times import local_midnight, next_period


def previous_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period of the same length just before [start, end)."""
    return start - (end - start), start


def change_ratio(current: Decimal, previous: Decimal) -> Decimal | None:
    """(current - previous) / previous, or ``None`` when there is nothing to compare with."""
    if previous == 0:
        return None
    return (current - previous) / previous


def format_change(ratio: Decimal | None) -> str | None:
    """``+12.5%`` / ``-3.0%``; ``None`` when there is no previous spend."""
    if ratio is None:
        return None
    percent = (ratio * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    if percent == 0:
        return "0.0%"
    return f"{'+' if percent > 0 else ''}{percent}%"


def month_bounds(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The local calendar month containing ``now``, as a UTC range."""
    first = now.astimezone(tz).date().replace(day=1)
    return local_midnight(first, tz), local_midnight(next_period(first, "month"), tz)


def project_month_end(spent: Decimal, month_start: datetime, now: datetime, month_end: datetime) -> Decimal:
    """Straight-line projection: spend so far, at the same rate, to the end of the month."""
    elapsed = (now - month_start).total_seconds()
    length = (month_end - month_start).total_seconds()
    if elapsed <= 0 or length <= 0:
        return spent
    rate = Decimal(int(length)) / Decimal(max(int(elapsed), 1))
    return (spent * rate).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN) if rate > 1 else spent


@dataclass(frozen=True)
class MonthProjection:
    month_start: datetime
    month_end: datetime
    spent_so_far: Decimal
    projected: Decimal


def month_end_projection(engine: Engine, now: datetime, tz: ZoneInfo, where: Where | None = None) -> MonthProjection:
    """This local month's spend to ``now`` (of the calls ``where`` picks, as the page's other figures) and where
    it lands at that rate (from the roll-ups)."""
    start, end = month_bounds(now, tz)
    spent = totals(engine, start, now + timedelta(seconds=1), where).cost_total
    return MonthProjection(start, end, spent, project_month_end(spent, start, now, end))
