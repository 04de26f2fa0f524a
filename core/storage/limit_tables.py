"""Enforced budgets: one counter row per (budget, subject, period), and the holds of reserving checks.

The counter row is what concurrent reserving checks lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite has one writer), so the guarantee "spend plus holds never exceed the
amount" rests on the database. For a budget of one scope its ``spend`` is a cache of the
roll-ups' exact sum, kept in step by the recording transaction (which bumps ``version``); a row
made by recording alone, or older than the last reprice, is ``stale`` and is summed again from
the roll-ups. An ``each:`` budget's row keeps holds and denials only: its subject's spend is read
from the entity roll-ups at each check (``core.limits.store.each_spend``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


class LimitCounter(Base):
    """What is held against one subject of one enforced budget in one period, the checks it denied, and (one
    scope only) its spend."""

    __tablename__ = "limit_counters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(300))  # the user or project of an each: budget, else ''
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    spend: Mapped[Decimal]
    held: Mapped[Decimal] = mapped_column(server_default=text("0"))  # holds written and not yet released or swept
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # bumped by every recording
    stale: Mapped[bool] = mapped_column(server_default=text("false"))  # spend is partial: sum it again
    corrections_seen: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # last reprice summed
    denied: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # checks denied by this budget

    __table_args__ = (
        # by period before subject: the exact lookups and a budget's counters of a period (migration 0019)
        UniqueConstraint("budget_id", "period_start", "subject", name="uq_limit_counter_key"),
    )


class LimitHold(Base):
    """An allowed reserving check's estimate, held against one counter until its call is recorded or it expires."""

    __tablename__ = "limit_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200), index=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(300))
    period_start: Mapped[datetime]
    amount: Mapped[Decimal]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    # its pages kept when a vacuum empties it, so its prepared statements are never planned for an empty table
    # (migration 0020)
    __table_args__ = (
        Index("ix_limit_holds_key", "budget_id", "subject", "period_start", "expires_at"),
        {"postgresql_with": {"vacuum_truncate": "false"}},
    )
