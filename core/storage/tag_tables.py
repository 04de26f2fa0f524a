"""Tags of each call, one row per (call, tag), for what reports read by tag.

The call's own row keeps its tags too (``api_usage_logs.tags``, a JSON list, shown in the
Usage logs); this table is the index of them: ``(tag, timestamp, usage_id)`` finds the calls
carrying a tag in a period (a filter on several tags, or a tag with a user), and the
primary key ``(usage_id, tag)`` answers "which tags has this call" for the raw edges of a
period. Spend per tag and six hours, UTC day and 7-day block lives in ``usage_entity_rollups``
(dimension ``tag``), and per tag, UTC day (and 7-day block), provider and model in
``usage_tag_rollups``: the Overview's chart and tables by provider or model with one tag picked
read it, not every call of the tag.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId, _RollupSums


class CallTag(Base):
    """One tag of one call; the call's timestamp repeated so a tag's calls in a period are one index range."""

    __tablename__ = "call_tags"
    __table_args__ = (
        Index("ix_call_tags_tag_time", "tag", "timestamp", "usage_id"),
        {"sqlite_with_rowid": False},
    )

    usage_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("api_usage_logs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    timestamp: Mapped[datetime]


class TagRollup(_RollupSums, Base):
    """Totals per (tag, grain, bucket, provider, model): a call adds to each of its tags; untagged calls to none.

    Grains as the entity roll-ups' (a UTC day and a 7-day block), one row per tag, bucket, provider
    and model with any call. The key starts with the tag, so one tag's buckets are each a prefix
    range of the key's b-tree (on SQLite the rows live in it: WITHOUT ROWID). Periods whose ends are
    not UTC midnights add or subtract the tag's raw calls near the ends, as with the entity roll-ups.
    """

    __tablename__ = "usage_tag_rollups"
    __table_args__ = {"sqlite_with_rowid": False}

    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    grain: Mapped[int] = mapped_column(Integer, primary_key=True)  # 86400 or 604800
    bucket_start: Mapped[int] = mapped_column(primary_key=True)  # epoch seconds, UTC
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
