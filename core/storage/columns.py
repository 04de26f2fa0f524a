"""Column types that store money and instants the same way on every database.

SQLite has no exact decimal and drops time zones, so the storage is decided here,
once: money is whole pico-dollars (``INTEGER``) on SQLite and ``NUMERIC(38, 12)``
on PostgreSQL; instants are UTC, returned time-zone aware on both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

from core.money import from_pico, to_pico, to_text


class Money(TypeDecorator[Decimal]):
    """An exact USD amount; Python side is always ``Decimal``."""

    # BigInteger, not Numeric, as the generic impl: SQLite's Numeric bind processor turns
    # values into floats, which must never happen to money, even on a path that asks the
    # type for its processor without going through ``dialect_impl``.
    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(38, 12, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}: {value!r}")
        if dialect.name == "sqlite":
            return to_pico(Decimal(value))
        return Decimal(value)

    @staticmethod
    def pico_processor(dialect: Dialect) -> Callable[[int], Any] | None:
        """How to bind an amount already counted in whole pico-dollars (``None``: as it is).

        For bulk inserts that priced in pico-dollars: SQLite stores them unchanged, other
        databases get the exact ``Decimal``; no float, no rounding, no round trip.
        """
        if dialect.name == "sqlite":
            return None
        return from_pico

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_pico(int(value))
        return Decimal(to_text(Decimal(value)))


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC; naive datetimes are refused, results are aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, not {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
