"""Reading report pages: the shape both providers share, checked field by field.

A page is ``{"data": [bucket, ...], "has_more": bool, "next_page": str|null}``; a bucket is one
UTC day (``bucket_width=1d``) with its ``results``. Each provider says how a bucket names its day
and how a result reads (a ``Dialect``); this module walks pages, names the exact place where a
page is not of the documented shape, and gathers pages into a ``Fetched``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from core.reconcile.errors import ReconcileError
from core.reconcile.lines import (
    AmountError,
    CostLine,
    Fetched,
    UsageLine,
    exact_amount,
    merge_cost_lines,
    merge_usage_lines,
)

PageKind = Literal["cost", "usage", "empty"]
ResultKind = Literal["cost", "usage"]
ONE_DAY = timedelta(days=1)


class ShapeError(Exception):
    """Where a page departs from the documented shape (``data[0].results[2].amount``) and how."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def exact_json(data: bytes | str) -> object:
    """JSON with every number exact: decimals as ``Decimal``, never through a float; NaN refused."""
    return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def as_object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ShapeError(where, f"is {_kind_of(value)}, not an object")
    return value


def as_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ShapeError(where, f"is {_kind_of(value)}, not a list")
    return value


def field(obj: Mapping[str, object], key: str, where: str) -> object:
    if key not in obj:
        raise ShapeError(join(where, key), "is missing")
    return obj[key]


def text_field(obj: Mapping[str, object], key: str, where: str, *, required: bool = True) -> str | None:
    """A non-empty string field; absent or null is allowed only when not ``required``."""
    value = obj.get(key)
    if value is None and not required:
        return None
    if value is None:
        raise ShapeError(join(where, key), "is missing" if key not in obj else "is null")
    if not isinstance(value, str) or not value.strip():
        raise ShapeError(join(where, key), f"{value!r} is not a name")
    return value.strip()


def count(obj: Mapping[str, object], key: str, where: str, *, required: bool = True) -> int:
    """A non-negative whole count; absent or null reads as 0 when not ``required``."""
    value = obj.get(key)
    if value is None and not required:
        return 0
    if value is None:
        raise ShapeError(join(where, key), "is missing" if key not in obj else "is null")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapeError(join(where, key), f"{_shown(value)} is not a whole count")
    return value


def amount(value: object, where: str, *, cents: bool = False) -> Decimal:
    try:
        return exact_amount(value, cents=cents)
    except AmountError as exc:
        raise ShapeError(where, str(exc)) from None


def utc_day(start: datetime, end: datetime, where: str) -> date:
    """The UTC day a bucket covers: it starts at midnight UTC and spans at most one day."""
    if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
        raise ShapeError(where, f"starts at {start.isoformat()}, not at midnight UTC (fetch with bucket_width=1d)")
    if not start < end <= start + ONE_DAY:
        raise ShapeError(where, f"spans {start.isoformat()} to {end.isoformat()}, not one UTC day (bucket_width=1d)")
    return start.date()


def rfc3339(obj: Mapping[str, object], key: str, where: str) -> datetime:
    value = field(obj, key, where)
    if not isinstance(value, str):
        raise ShapeError(join(where, key), f"{_shown(value)} is not an RFC 3339 time")
    raw = value.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ShapeError(join(where, key), f"{value!r} is not an RFC 3339 time") from None
    if moment.utcoffset() is None:
        raise ShapeError(join(where, key), f"{value!r} has no time zone offset")
    return moment.astimezone(UTC)


def epoch(obj: Mapping[str, object], key: str, where: str) -> datetime:
    value = field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(join(where, key), f"{_shown(value)} is not a time in epoch seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ShapeError(join(where, key), f"{value} is not a time in epoch seconds") from None


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shown(value: object) -> str:
    shown = repr(value) if not isinstance(value, Decimal) else str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@dataclass(frozen=True)
class Dialect:
    """How one provider's pages read: a bucket's bounds, a result's kind and its line."""

    provider: str
    bucket_bounds: Callable[[Mapping[str, object], str], tuple[datetime, datetime]]
    result_kind: Callable[[Mapping[str, object], str], ResultKind]
    cost_line: Callable[[Mapping[str, object], date, str], CostLine]
    usage_line: Callable[[Mapping[str, object], date, str], UsageLine]
    check_page: Callable[[Mapping[str, object]], None] = lambda page: None
    check_bucket: Callable[[Mapping[str, object], str], None] = lambda bucket, where: None


@dataclass(frozen=True)
class Page:
    """One page read: its lines, the days of its buckets, and where the next page is."""

    kind: PageKind
    cost_lines: tuple[CostLine, ...]
    usage_lines: tuple[UsageLine, ...]
    days: tuple[date, ...]
    has_more: bool
    next_page: str | None


def read_page(dialect: Dialect, page: object, context: str, expect: ResultKind | None = None) -> Page:
    """Read one page; each result tells its kind, and all must agree (with ``expect``, the endpoint's kind, if given).

    Raises ``ReconcileError`` naming the provider, ``context`` (``cost page 2``, ``line 3``) and the
    place in the page that is wrong.
    """
    try:
        return _read_page(dialect, page, expect)
    except ShapeError as exc:
        raise ReconcileError(dialect.provider, f"{context}: {exc}") from None


def _read_page(dialect: Dialect, page: object, expect: ResultKind | None) -> Page:
    if not isinstance(page, dict):
        raise ShapeError("", f"the page is {_kind_of(page)}, not a page object")
    dialect.check_page(page)
    data = as_list(field(page, "data", ""), "data")
    has_more = field(page, "has_more", "")
    if not isinstance(has_more, bool):
        raise ShapeError("has_more", f"{_shown(has_more)} is not true or false")
    next_page = page.get("next_page")
    if next_page is not None and not isinstance(next_page, str):
        raise ShapeError("next_page", f"{_shown(next_page)} is not a page cursor")
    if has_more and not next_page:
        raise ShapeError("next_page", "is missing while has_more is true")
    kind: ResultKind | None = expect
    costs: list[CostLine] = []
    usages: list[UsageLine] = []
    days: list[date] = []
    for i, raw_bucket in enumerate(data):
        where = join("data", i)
        bucket = as_object(raw_bucket, where)
        dialect.check_bucket(bucket, where)
        start, end = dialect.bucket_bounds(bucket, where)
        day = utc_day(start, end, where)
        days.append(day)
        results = as_list(field(bucket, "results", where), join(where, "results"))
        for j, raw_result in enumerate(results):
            result_where = join(join(where, "results"), j)
            result = as_object(raw_result, result_where)
            told = dialect.result_kind(result, result_where)
            if kind is None:
                kind = told
            elif told != kind:
                raise ShapeError(result_where, f"is a {told} result in a page of {kind} results")
            if kind == "cost":
                costs.append(dialect.cost_line(result, day, result_where))
            else:
                usages.append(dialect.usage_line(result, day, result_where))
    return Page(kind or "empty", tuple(costs), tuple(usages), tuple(days), has_more, next_page)


class Collector:
    """Pages gathered into one ``Fetched``; a day given twice by pages of one kind is refused.

    ``within``: the requested range (a fetch); a bucket outside it is refused. A page with no
    result at all (an import cannot tell its endpoint) counts its days as known for both cost and usage:
    nothing was billed or used on them.
    """

    def __init__(self, provider: str, within: tuple[date, date] | None = None) -> None:
        self.provider = provider
        self.within = within
        self._cost: list[CostLine] = []
        self._usage: list[UsageLine] = []
        self._seen: dict[str, dict[date, str]] = {"cost": {}, "usage": {}}
        self._empty_days: set[date] = set()

    def add(self, page: Page, context: str) -> None:
        for index, day in enumerate(page.days):
            if self.within and not self.within[0] <= day < self.within[1]:
                raise ReconcileError(
                    self.provider,
                    f"{context}: data[{index}] is for {day}, outside the range asked "
                    f"({self.within[0]} to {self.within[1]}, not included)",
                )
            if page.kind == "empty":
                self._empty_days.add(day)
                continue
            seen = self._seen[page.kind]
            if day in seen:
                raise ReconcileError(
                    self.provider, f"{context}: data[{index}] gives {day} again ({page.kind} already in {seen[day]})"
                )
            seen[day] = context
        self._cost.extend(page.cost_lines)
        self._usage.extend(page.usage_lines)

    @property
    def pages_seen(self) -> bool:
        return bool(self._seen["cost"] or self._seen["usage"] or self._empty_days)

    def fetched(self, days: frozenset[date] | None = None, usage_days: frozenset[date] | None = None) -> Fetched:
        """The whole report; ``days``/``usage_days`` default to the days the pages covered."""
        return Fetched(
            provider=self.provider,
            cost_lines=merge_cost_lines(self._cost),
            usage_lines=merge_usage_lines(self._usage),
            days=days if days is not None else frozenset(self._seen["cost"]) | self._empty_days,
            usage_days=usage_days if usage_days is not None else frozenset(self._seen["usage"]) | self._empty_days,
        )
