"""Reconciliation tables: what the provider billed, per UTC day, and which days were fetched.

A day's lines are replaced whole by each fetch or import of that day (one transaction), so the
tables hold the provider's latest word. ``reconcile_days`` is what tells "billed 0" (a fetched day
without lines) from "not known" (a day never fetched), and the same for token counts.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base


class BilledCost(Base):
    """One amount the provider billed: provider, UTC day, model (or a non-model item), token type ('' if none)."""

    __tablename__ = "reconcile_billed_costs"

    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    amount: Mapped[Decimal]  # USD, exact (at most 12 decimal places)


class BilledUsage(Base):
    """The provider's token counts for a UTC day and model, in Spendboard's meaning (input includes cache)."""

    __tablename__ = "reconcile_billed_usage"

    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_1h_tokens: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int | None] = mapped_column(BigInteger)  # None where the provider does not count them


class ReconciledDay(Base):
    """A UTC day of a provider's report that was fetched or imported: its bill, its usage, or both."""

    __tablename__ = "reconcile_days"

    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    cost_known: Mapped[bool]  # the day's cost lines are stored (none: billed 0)
    usage_known: Mapped[bool]  # the day's usage lines are stored (none: 0 tokens)
    fetched_at: Mapped[datetime]
