"""Tags of each call, one row per (call, tag), for what reports read by tag.

The call's own row keeps its tags too (``api_usage_logs.tags``, a JSON list, shown in the
Usage logs); this table is the index of them: ``(tag, timestamp, usage_id)`` finds the calls
carrying a tag in a period (a filter on several tags, or a tag with a provider), and the
primary key ``(usage_id, tag)`` answers "which tags has this call" for the raw edges of a
period. Spend per tag and UTC day lives in ``usage_entity_rollups`` (dimension ``tag``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


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
