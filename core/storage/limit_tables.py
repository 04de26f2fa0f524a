"""Enforced budgets: one counter row per (scope, subject, period), the holds of reserving checks, and denials.

The counter row is what concurrent reserving checks lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite has one writer), so the guarantee "spend plus holds never exceed the
amount" rests on the database. Its ``spend`` is a cache of the roll-ups' exact sum, kept in
step by the recording transaction (which bumps ``version``); a row made by recording alone,
or older than the last reprice, is ``stale`` and is summed again from the roll-ups.

A counter belongs to no budget: it is the spend of one scope (``all``, a provider, a model, a
user or a project; an ``each:user`` budget reads the ``user`` counter of the user checked) in
one period, read by every enforced budget of that scope and period (``user:u-17`` and
``each:user`` of the same month share u-17's counter), so recording writes one row per user
and period, whatever the number of budgets. A hold is on a counter the same way.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


class LimitCounter(Base):
    """Spend of one scope (and subject) in one period, and what reserving checks hold against it."""

    __tablename__ = "limit_counters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope_kind: Mapped[str] = mapped_column(String(10))  # all | provider | model | user | project
    subject: Mapped[str] = mapped_column(String(300))  # the provider, model, user or project; '' for all
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    spend: Mapped[Decimal]
    held: Mapped[Decimal] = mapped_column(server_default=text("0"))  # holds written and not yet released or swept
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # bumped by every recording
    stale: Mapped[bool] = mapped_column(server_default=text("false"))  # spend is partial: sum it again
    corrections_seen: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # last reprice summed

    # period first: the Budgets page's search reads one scope's subjects of one period from this index;
    # no index on spend (recording changes it on every batch)
    __table_args__ = (
        UniqueConstraint("scope_kind", "period_start", "period_end", "subject", name="uq_limit_counter_scope"),
    )


class LimitHold(Base):
    """An allowed reserving check's estimate, held against one counter until its call is recorded or it expires."""

    __tablename__ = "limit_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(200))
    scope_kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(300))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    amount: Mapped[Decimal]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_limit_holds_request", "request_id"),
        Index("ix_limit_holds_counter", "scope_kind", "period_start", "period_end", "subject", "expires_at"),
    )


class LimitDenial(Base):
    """Checks one enforced budget denied in one period (per subject of an ``each:`` budget): the Budgets page."""

    __tablename__ = "limit_denials"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(300))  # the user or project of an each: budget, else ''
    period_start: Mapped[datetime]
    denied: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __table_args__ = (UniqueConstraint("budget_id", "period_start", "subject", name="uq_limit_denial_key"),)
