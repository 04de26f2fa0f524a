"""Anomaly tables: each anomalous (scope, key, hour) found once, and the webhooks that hear of them.

``anomalies`` is unique on (scope, key, hour): however many processes, passes or restarts
judge an hour, the row is written once, with the values as first found, and only the pass
that wrote it puts events in the budgets' outbox (``budget_events``, one row per alert).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


class AnomalyRecord(Base):
    """One anomalous hour of one key, as found (and sent)."""

    __tablename__ = "anomalies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(10))  # provider | model | user | project
    key: Mapped[str] = mapped_column(String(500))  # model scope: provider/model
    hour: Mapped[datetime]  # the hour's UTC start
    spend: Mapped[Decimal]
    baseline: Mapped[Decimal]  # the median of the same hour in the four previous weeks
    # spend / baseline as exact decimal text ("15.70"); None when the median is 0. Text, not a number
    # column: SQLite's Numeric goes through floats, and a ratio can pass Money's range
    ratio: Mapped[str | None] = mapped_column(String(40))
    late: Mapped[bool] = mapped_column(default=False)  # found two hours or more after the hour ended
    found_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("scope", "key", "hour", name="uq_anomaly_key"),
        Index("ix_anomalies_hour", "hour"),
    )


class Alert(Base):
    """A webhook that receives ``anomaly.detected`` events; the same webhook fields as a budget."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_url: Mapped[str] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(200))  # whsec_ + base64
    webhook_format: Mapped[str] = mapped_column(String(10), server_default=text("'standard'"))
    webhook_disabled_at: Mapped[datetime | None]  # set when the receiver answered 410
    created_at: Mapped[datetime]
