"""Browsing the usage log: filtered, keyset-paged queries and a streamed CSV export.

Pages go newest first on (timestamp DESC, id DESC), so page N costs the same as
page 1 however many millions of rows precede it (no OFFSET); every filter has an
index that starts with its column and ends with (timestamp, id).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO
from urllib.parse import urlencode

from sqlalchemy import Engine, Select, and_, exists, or_, select

from core.money import to_text
from core.pricing.rates import MATCH_STEPS
from core.recording.rollups import stored_tags
from core.recording.tags import TagError, parse_tags
from core.reporting.aggregates import NO_PROJECT, NO_USER
from core.storage.tables import PriceVersion, UsageRecord
from core.storage.tag_tables import CallTag
from core.times import TimeError, parse_timestamp

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
    project: str | None = None
    tags: tuple[str, ...] = ()  # every one must be on the call

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
    project: str | None = None
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0
    service_tier: str = "standard"
    price_service_tier: str | None = None
    tier: int | None = None
    cost_web_search: Decimal = Decimal(0)
    cost_request: Decimal = Decimal(0)
    latency_ms: int | None = None
    status: str = "ok"
    tags: tuple[str, ...] = ()


CSV_COLUMNS = [f.name for f in fields(LogRow)]
Cursor = tuple[datetime, int]  # (timestamp, id) of the last row shown


@dataclass(frozen=True)
class LogPage:
    rows: list[LogRow]
    next_cursor: Cursor | None  # (timestamp, id) of the last row when more follow


def matches(column: Any, value: str) -> Any:
    """One filter model for every page: ``(no user)`` / ``(no project)`` pick the calls without one."""
    return column.is_(None) if value in (NO_USER, NO_PROJECT) else column == value


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
        u.project,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.reasoning_tokens,
        u.web_search_calls,
        u.service_tier,
        u.price_service_tier,
        u.tier,
        u.cost_web_search,
        u.cost_request,
        u.latency_ms,
        u.status,
        u.tags,
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
        (u.project, flt.project),
    ):
        if value:
            query = query.where(matches(column, value))
    for tag in flt.tags:  # one primary-key lookup in call_tags per call and tag
        query = query.where(exists().where(CallTag.usage_id == u.id, CallTag.tag == tag))
    if flt.matched_by and flt.matched_by != "exact":
        # the same predicate as the partial index's, so SQLite and PostgreSQL both use it
        query = query.where(u.matched_by != "exact")
    return query.order_by(u.timestamp.desc(), u.id.desc())


def _after(query: Select, cursor: Cursor | None) -> Select:  # type: ignore[type-arg]
    if cursor is None:
        return query
    moment, last_id = cursor
    u = UsageRecord
    return query.where(or_(u.timestamp < moment, and_(u.timestamp == moment, u.id < last_id)))


def _row(r) -> LogRow:  # type: ignore[no-untyped-def]
    values = dict(zip(CSV_COLUMNS, tuple(r), strict=False))
    values["tags"] = stored_tags(values["tags"])  # stored as a JSON list
    return LogRow(**values)


def fetch_page(engine: Engine, flt: LogFilter, limit: int = 50, after: Cursor | None = None) -> LogPage:
    """Up to ``limit`` calls, newest first, after ``after`` (the previous page's ``next_cursor``)."""
    if not 1 <= limit <= 10_000:
        raise LogFilterError(f"limit: {limit!r} is not from 1 to 10000")
    with engine.connect() as conn:
        result = conn.execute(_after(_query(flt), after).limit(limit + 1)).all()
    rows = [_row(r) for r in result[:limit]]
    more = len(result) > limit and rows
    return LogPage(rows, (rows[-1].timestamp, rows[-1].id) if more else None)


MAX_LOG_ID = 2**63 - 1


def parse_log_id(text: object) -> int | None:
    """A log id from a link or a form: ASCII digits within the id column's range, else ``None`` ("no such call")."""
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_LOG_ID else None


def get_row(engine: Engine, log_id: int) -> LogRow | None:
    """One logged call by id, with its price, or ``None`` (also for an id no row can have)."""
    if not 1 <= log_id <= MAX_LOG_ID:
        return None
    with engine.connect() as conn:
        found = conn.execute(_query(LogFilter()).where(UsageRecord.id == log_id)).first()
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


# OWASP "CSV Injection": a text cell starting with one of these (or one that a spreadsheet splitting on
# another separator would start one of its cells with) is run as a formula; a quote before it makes it text.
_FORMULA_START = re.compile(r"(^|[,;\t|])([=+\-@\t\r])")


def neutralise(text: str) -> str:
    """A name as CSV text no spreadsheet runs: a quote before a formula character at the start or after a separator."""
    return _FORMULA_START.sub(lambda m: f"{m.group(1)}'{m.group(2)}", text)


def _cell(value: object) -> object:
    if isinstance(value, Decimal):
        return to_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):  # tags, as a CSV import reads them back
        value = ";".join(value)
    if isinstance(value, str):
        return neutralise(value)
    return "" if value is None else value


def csv_chunks(engine: Engine, flt: LogFilter, rows_per_chunk: int = 1_000) -> Iterator[str]:
    """The filtered calls as CSV text, a chunk at a time (money as exact decimal text).

    Rows are read in keyset batches and written out as they come, so an export of
    millions of calls holds one batch in memory, on the server and in the response.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)  # every text field quoted; counts are numbers
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in iter_rows(engine, flt):
        writer.writerow([_cell(getattr(row, name)) for name in CSV_COLUMNS])
        count += 1
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(engine: Engine, flt: LogFilter, out: TextIO) -> int:
    """Write the filtered calls as CSV to a file; returns the row count."""
    count = -1  # the header line
    for chunk in csv_chunks(engine, flt):
        out.write(chunk)
        count += chunk.count("\r\n")
    return count


EXPORT_PATH = "/export/usage.csv"
EXPORT_PARAMS = ("start", "end", "provider", "model", "user", "matched_by", "project", "tags")


def export_query(flt: LogFilter) -> str:
    """The query string of the CSV export for a filter (see ``filter_from_query``)."""
    values = {name: getattr(flt, name) for name in EXPORT_PARAMS}
    values["tags"] = json.dumps(list(flt.tags)) if flt.tags else None  # a JSON list: a tag may hold any character
    return urlencode({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items() if v})


def filter_from_query(params: Mapping[str, str]) -> LogFilter:
    """A filter from the export's query string; unknown or bad values are refused by name."""
    unknown = sorted(set(params) - set(EXPORT_PARAMS))
    if unknown:
        raise LogFilterError(f"{unknown[0]}: unknown filter (known: {', '.join(EXPORT_PARAMS)})")
    found: dict[str, object] = {}
    for name in ("start", "end"):
        if params.get(name):
            try:
                found[name] = parse_timestamp(params[name], name)
            except TimeError as exc:
                raise LogFilterError(str(exc)) from None
    for name in ("provider", "model", "user", "matched_by", "project"):
        if params.get(name):
            found[name] = params[name]
    if params.get("tags"):
        try:
            found["tags"] = parse_tags(json.loads(params["tags"]), field="tags")
        except (ValueError, TagError) as exc:
            raise LogFilterError(f"tags: {params['tags']!r} is not a JSON list of tags ({exc})") from None
    return LogFilter(**found)  # type: ignore[arg-type]
