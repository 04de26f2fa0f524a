"""Tables of network ingestion (migration ``0003_api_keys``), on the shared ``core.storage.tables.Base``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


class ApiKey(Base):
    """An API key: only the SHA-256 of the key is kept; ``prefix`` is the visible part that finds it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    project: Mapped[str | None] = mapped_column(String(200))
    # ingest | read | check | all (migration 0014: keys made before it are ingest keys)
    scope: Mapped[str] = mapped_column(String(10), server_default=text("'ingest'"))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class RejectedIngestion(Base):
    """Items a route could not record, grouped per request and reason, with one sample."""

    __tablename__ = "rejected_ingestions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    route: Mapped[str] = mapped_column(String(100))
    key_name: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    count: Mapped[int]
    sample: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_rejected_at", "at", "id"),)
