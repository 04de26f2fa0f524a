"""Browsing the usage log: filtered, keyset-paged queries and a streamed CSV export.

Pages go newest first on (timestamp DESC, id DESC), so page N costs the same as
page 1 however many millions of rows precede it (no OFFSET); every filter has an
index that starts with its column and ends with (timestamp, id).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TextIO

from sqlalchemy import Engine, Select, and_, or_, select

from core.models import PriceVersion, UsageRecord, UsageRollup
from core.money import to_text
from core.pricing import MATCH_STEPS
from core.rollups import DAY

PAGE_SIZES = (25, 50, 100, 200)
EXPORT_BATCH = 5_000


class LogFilterError(ValueError):
    """A filter that cannot be applied; the message names the field and the value."""


@dataclass(frozen=True)
class LogFilter:
    """Which calls to show: a UTC period [start, end) and optional exact matches."""

    start: datetime | None = None
    end: datetime | None = None
    provider: str | None = None
    model: str | None = None
    user: str | None = None
    matched_by: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise LogFilterError(f"{name}: {moment.isoformat()} has no time zone")
        if self.matched_by and self.matched_by not in MATCH_STEPS:
            raise LogFilterError(f"matched_by: {self.matched_by!r} is not one of {', '.join(MATCH_STEPS)}")


@dataclass(frozen=True)
class LogRow:
    """One logged call with the price that was used for it (per token)."""

    id: int
    timestamp: datetime
    provider: str
    model: str
    user: str | None
    request_id: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_input: Decimal
    cost_output: Decimal
    cost_total: Decimal
    matched_by: str
    pricing_id: int | None
    price_model: str | None
    input_token_cost: Decimal | None
    output_token_cost: Decimal | None


CSV_COLUMNS = [f.name for f in fields(LogRow)]
Cursor = tuple[datetime, int]  # (timestamp, id) of the last row shown


@dataclass(frozen=True)
class LogPage:
    rows: list[LogRow]
    next_cursor: Cursor | None  # (timestamp, id) of the last row when more follow


def _query(flt: LogFilter) -> Select:  # type: ignore[type-arg]
    u = UsageRecord
    query = select(
        u.id,
        u.timestamp,
        u.provider,
        u.model,
        u.user_id,
        u.request_id,
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cost_input,
        u.cost_output,
        u.cost_total,
        u.matched_by,
        u.pricing_id,
        PriceVersion.model_name,
        PriceVersion.input_token_cost,
        PriceVersion.output_token_cost,
    ).outerjoin(PriceVersion, PriceVersion.id == u.pricing_id)
    if flt.start is not None:
        query = query.where(u.timestamp >= flt.start)
    if flt.end is not None:
        query = query.where(u.timestamp < flt.end)
    for column, value in (
        (u.provider, flt.provider),
        (u.model, flt.model),
        (u.user_id, flt.user),
        (u.matched_by, flt.matched_by),
    ):
        if value:
            query = query.where(column == value)
    return query.order_by(u.timestamp.desc(), u.id.desc())


def _after(query: Select, cursor: Cursor | None) -> Select:  # type: ignore[type-arg]
    if cursor is None:
        return query
    moment, last_id = cursor
    u = UsageRecord
    return query.where(or_(u.timestamp < moment, and_(u.timestamp == moment, u.id < last_id)))


def _row(r) -> LogRow:  # type: ignore[no-untyped-def]
    return LogRow(*tuple(r)[: len(CSV_COLUMNS)])


def fetch_page(engine: Engine, flt: LogFilter, limit: int = 50, after: Cursor | None = None) -> LogPage:
    """Up to ``limit`` calls, newest first, after ``after`` (the previous page's ``next_cursor``)."""
    if not 1 <= limit <= 10_000:
        raise LogFilterError(f"limit: {limit!r} is not from 1 to 10000")
    with engine.connect() as conn:
        result = conn.execute(_after(_query(flt), after).limit(limit + 1)).all()
    rows = [_row(r) for r in result[:limit]]
    more = len(result) > limit and rows
    return LogPage(rows, (rows[-1].timestamp, rows[-1].id) if more else None)


def get_row(engine: Engine, log_id: int) -> LogRow | None:
    """One logged call by id, with its price, or ``None``."""
    with engine.connect() as conn:
        found = conn.execute(
            _query(LogFilter()).where(UsageRecord.id == log_id)
        ).first()
    return _row(found) if found else None


def iter_rows(engine: Engine, flt: LogFilter, batch: int = EXPORT_BATCH) -> Iterator[LogRow]:
    """Every matching call, newest first, read in keyset batches so memory stays flat."""
    cursor: Cursor | None = None
    while True:
        page = fetch_page(engine, flt, limit=batch, after=cursor)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _cell(value: object) -> object:
    if isinstance(value, Decimal):
        return to_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # a name that a spreadsheet would run as a formula
    return "" if value is None else value


def write_csv(engine: Engine, flt: LogFilter, out: TextIO) -> int:
    """Write the filtered calls as CSV (money as exact decimal text); returns the row count."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in iter_rows(engine, flt):
        writer.writerow([_cell(getattr(row, name)) for name in CSV_COLUMNS])
        count += 1
    return count


def distinct_values(engine: Engine, column: str, limit: int = 500) -> list[str]:
    """Known providers / models / users for filter choices, from the daily roll-ups (far fewer rows than logs)."""
    r = UsageRollup
    col = {"provider": r.provider, "model": r.model, "user": r.user_id}.get(column)
    if col is None:
        raise LogFilterError(f"column: {column!r} is not provider, model or user")
    query = select(col).where(r.grain == DAY).distinct().order_by(col).limit(limit)
    with engine.connect() as conn:
        values = conn.execute(query).scalars()
        return [v for v in values if v]
