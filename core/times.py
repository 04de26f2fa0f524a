"""Instants and time zones: parsing call timestamps, and local periods as UTC ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# When a price's first version takes effect: before any call, so past calls are priced.
BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


class TimeError(ValueError):
    """A timestamp, date or zone that cannot be used; the message names field and value."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(value: object, field: str = "timestamp", *, now: datetime | None = None) -> datetime:
    """ISO 8601 to an aware UTC instant; no offset means UTC.

    Refuses dates before 2000 and more than a day in the future: a billing log
    with such a call is wrong, not early.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise TimeError(f"{field}: {value!r} is not an ISO 8601 time (e.g. 2025-06-30T14:05:00Z)") from None
    else:
        raise TimeError(f"{field}: {value!r} is not an ISO 8601 time")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: outside what an instant can be
        raise TimeError(f"{field}: {value!r} is outside the years a call can have (2000 to tomorrow)") from None
    limit = (now or now_utc()) + FUTURE_SLACK
    if moment < EARLIEST:
        raise TimeError(f"{field}: {value!r} is before 2000-01-01")
    if moment > limit:
        raise TimeError(f"{field}: {value!r} is in the future")
    return moment


def zone(name: str | None, field: str = "tz") -> ZoneInfo:
    """A named IANA zone (``Europe/Paris``, ``UTC``)."""
    try:
        return ZoneInfo((name or "UTC").strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(f"{field}: {name!r} is not a known time zone (e.g. UTC, Europe/Paris, Asia/Kolkata)") from None


def parse_date(value: str, field: str) -> date:
    """A report's day: ISO ``YYYY-MM-DD`` from 2000-01-01 to tomorrow (the days a call can have)."""
    try:
        day = date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise TimeError(f"{field}: {value!r} is not a date (YYYY-MM-DD)") from None
    tomorrow = now_utc().date() + timedelta(days=1)
    if not EARLIEST.date() <= day <= tomorrow:
        raise TimeError(
            f"{field}: {value!r} is outside 2000-01-01 .. {tomorrow.isoformat()} (the days a call can have)"
        )
    return day


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz`` (gaps at midnight resolve forward)."""
    naive = datetime(day.year, day.month, day.day)
    local = naive.replace(tzinfo=tz)
    # A DST gap at midnight: fold-insensitive round trip lands on the first valid instant.
    return local.astimezone(UTC)


def period_start(day: date, granularity: str) -> date:
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    raise TimeError(f"granularity: {granularity!r} is not day, week or month")


def next_period(start: date, granularity: str) -> date:
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    if granularity == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    raise TimeError(f"granularity: {granularity!r} is not day, week or month")


def local_periods(
    start: datetime, end: datetime, tz: ZoneInfo, granularity: str
) -> list[tuple[date, datetime, datetime]]:
    """Local periods (day/week/month in ``tz``) overlapping [start, end), as UTC ranges clipped to it."""
    if end <= start:
        return []
    first = period_start(start.astimezone(tz).date(), granularity)
    periods = []
    label = first
    while True:
        lo = local_midnight(label, tz)
        following = next_period(label, granularity)
        hi = local_midnight(following, tz)
        if lo >= end:
            break
        if hi > start:
            periods.append((label, max(lo, start), min(hi, end)))
        label = following
    return periods
