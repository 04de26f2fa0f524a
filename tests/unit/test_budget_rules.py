"""Budget rules without a database: Standard Webhooks signatures, secrets, calendar periods, projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.budgets import service
from core.budgets.periods import period_of, periods_between
from core.notify import delivery

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_matches_the_specification_test_vector() -> None:
    signature = delivery.sign(SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_generated_secret_is_whsec_and_24_bytes() -> None:
    secret = delivery.new_secret()
    assert secret.startswith("whsec_") and len(delivery.secret_key(secret)) == 24
    assert delivery.new_secret() != secret


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "period", "tz", "start", "end"),
    [
        (utc(2026, 3, 31, 23, 59, 59), "month", "UTC", utc(2026, 3, 1), utc(2026, 4, 1)),
        (utc(2026, 4, 1), "month", "UTC", utc(2026, 4, 1), utc(2026, 5, 1)),
        (utc(2026, 3, 29, 23, 59), "week", "UTC", utc(2026, 3, 23), utc(2026, 3, 30)),  # Sunday ends the ISO week
        (utc(2026, 3, 30), "week", "UTC", utc(2026, 3, 30), utc(2026, 4, 6)),
        (utc(2026, 3, 10, 23, 59, 59), "day", "UTC", utc(2026, 3, 10), utc(2026, 3, 11)),
        # Europe/Berlin, 2026-03-29: clocks go from 02:00 to 03:00, the day lasts 23 hours
        (utc(2026, 3, 29, 12), "day", "Europe/Berlin", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        (utc(2026, 3, 29, 22), "day", "Europe/Berlin", utc(2026, 3, 29, 22), utc(2026, 3, 30, 22)),
        # 2026-10-25: back from 03:00 to 02:00, 25 hours
        (utc(2026, 10, 25, 12), "day", "Europe/Berlin", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        (utc(2026, 3, 29, 12), "week", "Europe/Berlin", utc(2026, 3, 22, 23), utc(2026, 3, 29, 22)),
        (utc(2026, 3, 31, 22), "month", "Europe/Berlin", utc(2026, 3, 31, 22), utc(2026, 4, 30, 22)),
        # Asia/Kolkata, +05:30 all year
        (utc(2026, 3, 10, 18, 29, 59), "day", "Asia/Kolkata", utc(2026, 3, 9, 18, 30), utc(2026, 3, 10, 18, 30)),
        (utc(2026, 3, 10, 18, 30), "day", "Asia/Kolkata", utc(2026, 3, 10, 18, 30), utc(2026, 3, 11, 18, 30)),
        (utc(2026, 3, 31, 18, 30), "month", "Asia/Kolkata", utc(2026, 3, 31, 18, 30), utc(2026, 4, 30, 18, 30)),
        (utc(2026, 3, 22, 18, 30), "week", "Asia/Kolkata", utc(2026, 3, 22, 18, 30), utc(2026, 3, 29, 18, 30)),
    ],
)
def test_period_bounds(moment: datetime, period: str, tz: str, start: datetime, end: datetime) -> None:
    found = period_of(moment, period, ZoneInfo(tz))
    assert (found.start, found.end) == (start, end)


def test_periods_tile_without_gaps() -> None:
    tz = ZoneInfo("Europe/Berlin")
    found = periods_between(utc(2026, 3, 1), utc(2026, 11, 1), "day", tz)
    assert all(a.end == b.start for a, b in zip(found, found[1:], strict=False))
    assert {(p.end - p.start).total_seconds() / 3600 for p in found} == {23, 24, 25}
    assert found[0].label == date(2026, 3, 1)


def test_projection_waits_for_a_tenth_of_the_period() -> None:
    period = period_of(utc(2026, 3, 1), "month", ZoneInfo("UTC"))  # 31 days
    assert service.project(Decimal(0), period, period.start) is None  # the first of the month: no division
    assert service.project(Decimal(5), period, period.start + timedelta(days=3)) is None  # under 10%
    at = period.start + timedelta(days=3, hours=2, minutes=24)  # exactly 10%
    assert service.project(Decimal(5), period, at) == Decimal(50)
    assert service.project(Decimal(5), period, period.end + timedelta(days=3)) == Decimal(5)
    exceed = service.exceed_at(Decimal(20), Decimal(100), period, period.start + timedelta(days=6, hours=4, minutes=48))
    assert exceed == period.start + timedelta(days=31) - timedelta(seconds=0) or exceed is None
    assert service.exceed_at(Decimal(50), Decimal(100), period, period.start + timedelta(days=10)) == (
        period.start + timedelta(days=20)
    )
