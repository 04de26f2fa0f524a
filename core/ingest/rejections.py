"""Refused items are kept, not lost: one row per (request, reason) with a count and one sample.

LiteLLM drops a batch that gets an error answer, so its route answers 200 and the
dashboard shows what was refused ("Rejected ingestions": reason and count).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select

from core.ingest import limits
from core.storage.engine import run_write
from core.storage.key_tables import RejectedIngestion

SAMPLE_LIMIT = 2_000
REASON_LIMIT = 1_000


@dataclass(frozen=True)
class Refusal:
    """One refused item: why, and a short sample of what was sent."""

    reason: str
    sample: str | None = None


@dataclass(frozen=True)
class RejectionSummary:
    route: str
    reason: str
    count: int
    last_at: datetime
    key_name: str | None
    sample: str | None


def keep_refusals(engine: Engine, route: str, key_name: str | None, refusals: Iterable[Refusal]) -> int:
    """Store refusals grouped by reason; returns the number of items kept."""
    grouped: dict[str, tuple[int, str | None]] = {}
    for refusal in refusals:
        reason = _printable(refusal.reason)[:REASON_LIMIT]
        count, sample = grouped.get(reason, (0, None))
        grouped[reason] = (count + 1, sample if sample is not None else _clip(refusal.sample))
    if not grouped:
        return 0
    if len(grouped) > limits.KEPT_REASONS_PER_REQUEST:  # a row per reason up to the limit, the rest in one row
        reasons = list(grouped)
        kept, rest = reasons[: limits.KEPT_REASONS_PER_REQUEST - 1], reasons[limits.KEPT_REASONS_PER_REQUEST - 1 :]
        others = sum(grouped[r][0] for r in rest)
        first_sample = grouped[rest[0]][1]
        grouped = {r: grouped[r] for r in kept}
        grouped[f"{others:,} more items refused for {len(rest):,} other reasons (first: {rest[0][:200]})"] = (
            others,
            first_sample,
        )
    now = datetime.now(UTC)
    rows = [
        {"at": now, "route": route, "key_name": key_name, "reason": reason, "count": count, "sample": sample}
        for reason, (count, sample) in grouped.items()
    ]

    def work(conn: Connection) -> None:
        conn.execute(insert(RejectedIngestion), rows)
        prune(conn, now)

    run_write(engine, work)
    return sum(count for count, _ in grouped.values())


def prune(conn: Connection, now: datetime) -> None:
    """Kept refusals stay bounded: none older than ``KEPT_DAYS``, at most the newest ``KEPT_ROWS`` rows."""
    r = RejectedIngestion
    conn.execute(delete(r).where(r.at < now - timedelta(days=limits.KEPT_DAYS)))
    oldest_kept = conn.execute(select(r.id).order_by(r.id.desc()).offset(limits.KEPT_ROWS - 1).limit(1)).scalar()
    if oldest_kept is not None:
        conn.execute(delete(r).where(r.id < oldest_kept))


def _printable(text: str) -> str:
    """What a text column of every database keeps: PostgreSQL refuses NUL, and lone surrogates are not UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clip(sample: str | None) -> str | None:
    if sample is None:
        return None
    sample = _printable(sample)
    if len(sample) <= SAMPLE_LIMIT:
        return sample
    return sample[:SAMPLE_LIMIT] + "..."


def rejection_summary(engine: Engine, limit: int = 200) -> list[RejectionSummary]:
    """Refusals by route and reason, most recent first: how many items, when last, one sample."""
    r = RejectedIngestion
    last = func.max(r.at).label("last_at")
    query = (
        select(r.route, r.reason, func.sum(r.count).label("items"), last, func.max(r.id).label("last_id"))
        .group_by(r.route, r.reason)
        .order_by(last.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        groups = conn.execute(query).all()
        ids = [g.last_id for g in groups]
        latest = {row.id: row for row in conn.execute(select(r.id, r.key_name, r.sample).where(r.id.in_(ids)))}
    return [
        RejectionSummary(
            g.route, g.reason, int(g.items), g.last_at, latest[g.last_id].key_name, latest[g.last_id].sample
        )
        for g in groups
    ]
