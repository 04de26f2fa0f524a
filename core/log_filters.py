"""What the Usage logs page needs besides the rows: how many calls match, which models a provider has.

Both are read from the roll-ups (a few primary-key range scans, whatever the number of
calls); only a ``matched_by`` other than ``estimate`` needs the log itself, and that
count uses its index and stops at :data:`COUNT_LIMIT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, false, func, or_, select

from core.logs import LogFilter
from core.models import UsageRecord, UsageRollup
from core.reports import segments

COUNT_LIMIT = 100_000


@dataclass(frozen=True)
class CallCount:
    """``calls`` matching calls; when ``exact`` is False there are more than that."""

    calls: int
    exact: bool = True

    def text(self) -> str:
        if not self.exact:
            return f"more than {self.calls:,} calls match"
        return f"{self.calls:,} call{'' if self.calls == 1 else 's'} match{'es' if self.calls == 1 else ''}"


def _in_period(start: datetime, end: datetime) -> ColumnElement[bool]:
    r = UsageRollup
    runs = [(r.grain == g) & (r.bucket_start >= lo) & (r.bucket_start < hi) for g, lo, hi in segments(start, end)]
    return or_(*runs) if runs else false()


def _rollup_filters(flt: LogFilter) -> list[ColumnElement[bool]]:
    r = UsageRollup
    found = []
    for column, value in ((r.provider, flt.provider), (r.model, flt.model), (r.user_id, flt.user)):
        if value:
            found.append(column == value)
    return found


def count_calls(engine: Engine, flt: LogFilter) -> CallCount:
    """How many calls the filter matches (period, provider, model, user, matched_by)."""
    if flt.start is None or flt.end is None:
        raise ValueError("count_calls: a period (start and end) is required")
    if flt.matched_by in (None, "estimate"):
        measure = UsageRollup.calls if flt.matched_by is None else UsageRollup.estimated_calls
        query = select(func.coalesce(func.sum(measure), 0)).where(_in_period(flt.start, flt.end), *_rollup_filters(flt))
        with engine.connect() as conn:
            return CallCount(int(conn.execute(query).scalar_one()))
    u = UsageRecord
    conditions = [u.matched_by == flt.matched_by, u.timestamp >= flt.start, u.timestamp < flt.end]
    for column, value in ((u.provider, flt.provider), (u.model, flt.model), (u.user_id, flt.user)):
        if value:
            conditions.append(column == value)
    bounded = select(u.id).where(*conditions).limit(COUNT_LIMIT + 1).subquery()
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(bounded)).scalar_one())
    return CallCount(min(n, COUNT_LIMIT), exact=n <= COUNT_LIMIT)


def models_of(engine: Engine, start: datetime, end: datetime, provider: str | None = None) -> list[str]:
    """The models with calls in [start, end), of one provider when given, sorted by name."""
    r = UsageRollup
    query = select(r.model).distinct().where(_in_period(start, end))
    if provider:
        query = query.where(r.provider == provider)
    with engine.connect() as conn:
        return sorted(conn.execute(query).scalars())
