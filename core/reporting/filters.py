"""What the Usage logs page needs besides the rows: how many calls match, which models a provider has.

Both are read from the roll-ups (a few primary-key range scans, whatever the number of
calls, through core.reporting.aggregates); only a ``matched_by`` other than ``estimate`` needs the log itself, and that
count uses its index and stops at :data:`COUNT_LIMIT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, exists, func, select

from core.reporting import aggregates as reports
from core.reporting.logs import LogFilter, matches
from core.storage.tables import UsageRecord
from core.storage.tag_tables import CallTag

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


def _where(flt: LogFilter) -> dict[str, str]:  # the tags go apart: several may be required
    found = {"provider": flt.provider, "model": flt.model, "user": flt.user, "project": flt.project}
    return {name: value for name, value in found.items() if value}


def count_calls(engine: Engine, flt: LogFilter) -> CallCount:
    """How many calls the filter matches (period, provider, model, user, project, matched_by)."""
    if flt.start is None or flt.end is None:
        raise ValueError("count_calls: a period (start and end) is required")
    if flt.matched_by in (None, "estimate"):
        found = reports.totals(engine, flt.start, flt.end, where=_where(flt), tags=flt.tags)
        return CallCount(found.calls if flt.matched_by is None else found.estimated_calls)
    u = UsageRecord
    conditions = [u.matched_by == flt.matched_by, u.timestamp >= flt.start, u.timestamp < flt.end]
    for column, value in (
        (u.provider, flt.provider),
        (u.model, flt.model),
        (u.user_id, flt.user),
        (u.project, flt.project),
    ):
        if value:
            conditions.append(matches(column, value))
    for tag in flt.tags:
        conditions.append(exists().where(CallTag.usage_id == u.id, CallTag.tag == tag))
    bounded = select(u.id).where(*conditions).limit(COUNT_LIMIT + 1).subquery()
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(bounded)).scalar_one())
    return CallCount(min(n, COUNT_LIMIT), exact=n <= COUNT_LIMIT)


def models_of(engine: Engine, start: datetime, end: datetime, provider: str | None = None) -> list[str]:
    """The models with calls in [start, end), of one provider when given, sorted by name."""
    rows = reports.breakdown(engine, start, end, "model", where={"provider": provider} if provider else None)
    return sorted(r.key or "" for r in rows)
