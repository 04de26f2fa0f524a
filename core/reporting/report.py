"""One spend report, as ``report`` prints it and the pages draw it: totals and rows, filtered.

Filters are exact matches on provider, model, user and project, and tags that a call must
all carry. By tag, a call counts under each of its tags, so the rows overlap and their sum
can exceed the total; the total always counts each call once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.recording.tags import TagError, parse_tags
from core.reporting import aggregates as reports

BY = ("day", "provider", "model", "user", "project", "tag")
FILTERS = ("provider", "model", "user", "project")


@dataclass(frozen=True)
class Report:
    by: str
    total: reports.Totals
    rows: list[reports.Row]
    where: dict[str, str]
    tags: tuple[str, ...]

    @property
    def rows_overlap(self) -> bool:
        """By tag a call with two tags is in two rows: the rows do not add up to the total."""
        return self.by == "tag"


def report_filters(
    where: Mapping[str, str | None], tags: Sequence[str] | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Filters as given (empty values dropped) and the tags checked as a call's tags are; ValueError names the field."""
    unknown = sorted(set(where) - set(FILTERS))
    if unknown:
        raise ValueError(f"filter: {unknown[0]!r} is not one of {', '.join(FILTERS)}")
    clean = {name: value for name, value in where.items() if value}
    try:
        required = parse_tags(list(tags or ()), field="tag")
    except TagError as exc:
        raise ValueError(str(exc)) from None
    return clean, required


def spend_report(
    engine: Engine,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    by: str = "day",
    where: Mapping[str, str | None] | None = None,
    tags: Sequence[str] | None = None,
    limit: int | None = None,
) -> Report:
    """Totals over [start, end) and rows per local day (in ``tz``) or per key of ``by``, the filters applied."""
    if by not in BY:
        raise ValueError(f"by: {by!r} is not one of {', '.join(BY)}")
    clean, required = report_filters(where or {}, tags)
    total = reports.totals(engine, start, end, clean or None, tags=required)
    if by == "day":
        rows = [
            row
            for row in reports.over_time(engine, start, end, tz, "day", None, clean or None, tags=required)
            if row.totals.calls
        ]
    else:
        rows = reports.breakdown(engine, start, end, by, clean or None, limit, tags=required)
    return Report(by, total, rows, clean, required)
