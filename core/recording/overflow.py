"""Stored sums stay exact: SQLite keeps whole pico-dollars in 64-bit integers and turns a sum past
2^63-1 into a float without a word, so the write that would do that is refused instead.

Every roll-up bucket a call adds to sits inside a UTC day of the series (its provider's
all-models row) and a 7-day block of the users' and projects' roll-ups; sums only grow, so
checking those rows right after the upsert, in the same transaction, catches any overflow. A tag's
row by provider and model (``usage_tag_rollups``) never exceeds the same tag's 7-day block in the
entity roll-ups (that block sums it and the tag's other providers and models), checked here.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, or_, select

from core.recording.rollups import DAY, SUM_COLUMNS, WEEK, _epoch_seconds
from core.storage.tables import EntityRollup, UsageRecord, UsageRollup

LIMIT_PICO = 2**63 - 1
MESSAGE = (
    "overflow: storing this call would push a stored sum past 2^63-1 pico-dollars (USD 9,223,372.036854775807), "
    "the most SQLite keeps exactly; nothing was written. PostgreSQL (DATABASE_URL) is the way past USD 9.2M"
)


class SumOverflowError(ValueError):
    """A write that would push a stored sum past what the database keeps exactly."""

    def __init__(self) -> None:
        super().__init__(MESSAGE)


def is_sum_overflow(exc: BaseException) -> bool:
    """SQLite's own ``integer overflow`` (from ``sum()``), as raised through SQLAlchemy."""
    orig = getattr(exc, "orig", exc)
    return "integer overflow" in str(orig).lower()


def _any_real(table: type) -> ColumnElement[bool]:
    return or_(*[func.typeof(getattr(table, name)) == "real" for name in SUM_COLUMNS])


def refuse_overflow(conn: Connection, first_id: int, last_id: int) -> None:
    """Raise :class:`SumOverflowError` when the calls just added pushed a roll-up sum to a float (SQLite)."""
    if conn.dialect.name != "sqlite":
        return  # NUMERIC(38, 12): far past any bill, and an overflow there is an error, never a float
    epoch = _epoch_seconds(conn)
    days = select((epoch - epoch % DAY).label("day")).where(UsageRecord.id.between(first_id, last_id)).distinct()
    day_list = list(conn.execute(days).scalars())
    weeks = sorted({day - day % WEEK for day in day_list})
    series = select(UsageRollup.grain).where(
        UsageRollup.grain == DAY, UsageRollup.bucket_start.in_(day_list), _any_real(UsageRollup)
    )
    entities = select(EntityRollup.grain).where(
        EntityRollup.grain == WEEK, EntityRollup.bucket_start.in_(weeks), _any_real(EntityRollup)
    )
    if conn.execute(series.limit(1)).first() or conn.execute(entities.limit(1)).first():
        raise SumOverflowError()
