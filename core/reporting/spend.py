"""Spend totals for ``report --json`` and ``GET /api/v1/spend``: one parser, one function, two entrypoints.

Both the command line (``core/cli/main.py`` ``cmd_report``) and the read API (``routes/read.py``)
turn their arguments into a :class:`SpendQuery` with :func:`parse_spend_query` and answer with
:func:`spend_json`, so the same arguments give the same figures, byte for byte once serialised.
Argument names in messages carry the entrypoint's own spelling (``--since`` or ``since``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.money import to_text
from core.recording.tags import TagError, parse_tags
from core.reporting import aggregates as reports
from core.times import TimeError, parse_date, zone

BY = ("day", "provider", "model", "user", "project", "tag")
FILTERS = ("provider", "model", "user", "project")
EARLIEST_DAY = date(2000, 1, 1)
TEXT_LIMIT = 300


class SpendArgumentError(ValueError):
    """An argument that cannot be used; the message names it (``--by`` or ``by``) and its value."""


@dataclass(frozen=True)
class SpendQuery:
    """What to sum: days ``since``..``until`` (both included, in ``tz``), grouped ``by``, filtered by ``where``."""

    since: date | None = None
    until: date | None = None
    by: str = "day"
    tz_name: str = "UTC"
    where: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # a call must carry every one

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.tz_name)


def _day(text: str | None, name: str, today: date) -> date | None:
    if text is None:
        return None
    try:
        day = parse_date(text, name)
    except TimeError as exc:
        raise SpendArgumentError(str(exc)) from None
    latest = today + timedelta(days=1)
    if not EARLIEST_DAY <= day <= latest:
        raise SpendArgumentError(f"{name}: {text!r} is outside {EARLIEST_DAY} .. {latest} (2000-01-01 to tomorrow)")
    return day


def _text(value: str, name: str) -> str:
    clean = value.strip()
    if not clean or len(clean) > TEXT_LIMIT or any(ord(ch) < 32 or ord(ch) == 127 for ch in clean):
        raise SpendArgumentError(f"{name}: {value[:60]!r} is not a name (1 to {TEXT_LIMIT} printable characters)")
    return clean


def parse_spend_query(
    since: str | None = None,
    until: str | None = None,
    by: str | None = None,
    tz: str | None = None,
    filters: Mapping[str, str | None] | None = None,
    tags: Sequence[str] = (),
    *,
    prefix: str = "",
    today: date | None = None,
) -> SpendQuery:
    """The query the arguments describe; :class:`SpendArgumentError` names the first bad one.

    ``prefix`` is how the entrypoint spells an argument (``"--"`` on the command line).
    Days run from 2000-01-01 to tomorrow (UTC), as recorded calls do.
    """
    current = today or datetime.now(UTC).date()
    first = _day(since, f"{prefix}since", current)
    last = _day(until, f"{prefix}until", current)
    if first and last and last < first:
        raise SpendArgumentError(f"{prefix}until: {last} is before {prefix}since {first}")
    grouping = "day" if by is None else by.strip()
    if grouping not in BY:
        raise SpendArgumentError(f"{prefix}by: {by!r} is not one of {', '.join(BY)}")
    tz_name = "UTC" if tz is None else tz
    try:
        zone(tz_name, f"{prefix}tz")
    except TimeError as exc:
        raise SpendArgumentError(str(exc)) from None
    if not tz_name.strip():
        raise SpendArgumentError(f"{prefix}tz: {tz!r} is not a known time zone (e.g. UTC, Europe/Paris)")
    try:
        required = parse_tags(list(tags), field=f"{prefix}tag")
    except TagError as exc:
        raise SpendArgumentError(str(exc)) from None
    where: dict[str, str] = {}
    for name, value in (filters or {}).items():
        if name not in FILTERS:
            raise SpendArgumentError(f"{prefix}{name}: not a filter (filters: {', '.join(FILTERS)})")
        if value is not None:
            where[name] = _text(value, f"{prefix}{name}")
    return SpendQuery(first, last, grouping, tz_name, where, required)


@dataclass(frozen=True)
class SpendFigures:
    """The totals of the query's calls and its rows (days with calls, or groups biggest spend first)."""

    query: SpendQuery
    total: reports.Totals
    rows: list[reports.Row]


def spend_figures(engine: Engine, query: SpendQuery) -> SpendFigures:
    """Sums from the roll-ups (core.reporting.aggregates), as the dashboard reads them."""
    tz = query.tz
    where = dict(query.where) or None
    span = reports.local_range(query.since, query.until, tz, engine)
    if span is None:
        return SpendFigures(query, reports.Totals(), [])
    start, end = span
    tags = query.tags
    total = reports.totals(engine, start, end, where, tags=tags)
    if query.by == "day":
        rows = [r for r in reports.over_time(engine, start, end, tz, "day", where=where, tags=tags) if r.totals.calls]
    else:
        rows = reports.breakdown(engine, start, end, query.by, where, tags=tags)
    return SpendFigures(query, total, rows)


def _row_json(row: reports.Row, by: str) -> dict[str, Any]:
    t = row.totals
    out: dict[str, Any] = {}
    if by == "day":
        out["day"] = row.period.isoformat() if row.period else None
    else:
        out[by] = row.key
    out.update(
        calls=t.calls,
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_input_tokens=t.cached_input_tokens,
        cache_write_tokens=t.cache_write_tokens,
        cache_write_1h_tokens=t.cache_write_1h_tokens,
        reasoning_tokens=t.reasoning_tokens,
        web_search_calls=t.web_search_calls,
        cost_total=to_text(t.cost_total),
        estimated_calls=t.estimated_calls,
    )
    return out


def figures_json(figures: SpendFigures) -> dict[str, Any]:
    """The JSON object of ``report --json``; money as exact decimal strings."""
    query, total = figures.query, figures.total
    return {
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "tz": query.tz_name,
        "by": query.by,
        "calls": total.calls,
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "cost_total": to_text(total.cost_total),
        "estimated_calls": total.estimated_calls,
        "filters": {**query.where, **({"tag": list(query.tags)} if query.tags else {})},
        # by tag a call counts under each of its tags: the rows overlap; the totals count each call once
        "rows_overlap": query.by == "tag",
        "rows": [_row_json(r, query.by) for r in figures.rows],
    }


def spend_json(engine: Engine, query: SpendQuery) -> dict[str, Any]:
    """``report --json`` and ``GET /api/v1/spend``: the one function both answer with."""
    return figures_json(spend_figures(engine, query))
