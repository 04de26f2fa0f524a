"""The database side of reconciliation: storing a provider's report, and reading it back per day.

A report replaces, in one transaction, every day it covers for its provider (its cost lines for
the days whose bill it holds, its usage lines for the days whose usage it holds): fetching twice
changes nothing, a day reported empty is stored as billed 0, and a failed fetch never gets here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zlib import crc32

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from core.reconcile.lines import Fetched
from core.storage.engine import run_write
from core.storage.reconcile_tables import BilledCost, BilledUsage, ReconciledDay
from core.times import now_utc


@dataclass(frozen=True)
class Stored:
    """What one fetch or import stored: the days replaced, the cost lines written, their sum."""

    provider: str
    days: int
    lines: int
    billed_total: Decimal


def _chunks(days: Iterable[date], size: int = 500) -> Iterable[list[date]]:
    ordered = sorted(days)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def store_fetched(engine: Engine, fetched: Fetched, *, at: datetime | None = None) -> Stored:
    """Replace every day ``fetched`` covers for its provider, in one transaction."""
    provider = fetched.provider
    moment = at or now_utc()
    cost_days, usage_days = set(fetched.days), set(fetched.usage_days)
    every_day = cost_days | usage_days

    def work(conn: Connection) -> Stored:
        if conn.dialect.name == "postgresql":
            # two fetches of one provider at once take turns (SQLite's BEGIN IMMEDIATE already does)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": crc32(f"reconcile:{provider}".encode())})
        known: dict[date, tuple[bool, bool]] = {}
        for chunk in _chunks(every_day):
            for row in conn.execute(
                select(ReconciledDay.day, ReconciledDay.cost_known, ReconciledDay.usage_known).where(
                    ReconciledDay.provider == provider, ReconciledDay.day.in_(chunk)
                )
            ):
                known[row.day] = (bool(row.cost_known), bool(row.usage_known))
            conn.execute(delete(ReconciledDay).where(ReconciledDay.provider == provider, ReconciledDay.day.in_(chunk)))
        for chunk in _chunks(cost_days):
            conn.execute(delete(BilledCost).where(BilledCost.provider == provider, BilledCost.day.in_(chunk)))
        for chunk in _chunks(usage_days):
            conn.execute(delete(BilledUsage).where(BilledUsage.provider == provider, BilledUsage.day.in_(chunk)))
        costs = [
            {
                "provider": provider,
                "day": line.day,
                "model": line.model,
                "token_type": line.token_type or "",
                "amount": line.amount,
            }
            for line in fetched.cost_lines
            if line.day in cost_days
        ]
        if costs:
            conn.execute(insert(BilledCost), costs)
        usage = [
            {
                "provider": provider,
                "day": line.day,
                "model": line.model,
                "input_tokens": line.input_tokens,
                "output_tokens": line.output_tokens,
                "cached_input_tokens": line.cached_input_tokens,
                "cache_write_tokens": line.cache_write_tokens,
                "cache_write_1h_tokens": line.cache_write_1h_tokens,
                "requests": line.requests,
            }
            for line in fetched.usage_lines
            if line.day in usage_days
        ]
        if usage:
            conn.execute(insert(BilledUsage), usage)
        days = []
        for day in sorted(every_day):
            cost_before, usage_before = known.get(day, (False, False))
            days.append(
                {
                    "provider": provider,
                    "day": day,
                    "cost_known": cost_before or day in cost_days,
                    "usage_known": usage_before or day in usage_days,
                    "fetched_at": moment,
                }
            )
        if days:
            conn.execute(insert(ReconciledDay), days)
        total = sum((line.amount for line in fetched.cost_lines if line.day in cost_days), Decimal(0))
        return Stored(provider, len(every_day), len(costs), total)

    return run_write(engine, work)


@dataclass(frozen=True)
class BilledDay:
    """A fetched day of a provider: whether its bill and its usage are known."""

    provider: str
    day: date
    cost_known: bool
    usage_known: bool


@dataclass(frozen=True)
class BilledAmount:
    provider: str
    day: date
    model: str
    amount: Decimal


@dataclass(frozen=True)
class BilledTokens:
    provider: str
    day: date
    model: str
    input_tokens: int
    output_tokens: int


def _window(column, since: date | None, until: date | None) -> list:  # type: ignore[no-untyped-def]
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column <= until)
    return conditions


def billed(
    engine: Engine, providers: Iterable[str], since: date | None, until: date | None
) -> tuple[list[BilledDay], list[BilledAmount], list[BilledTokens]]:
    """The stored report of ``providers`` over the UTC days from ``since`` to ``until`` (both included):
    the days known, the amounts per day and model (token types summed), the tokens per day and model."""
    wanted = sorted(set(providers))
    with engine.connect() as conn:
        days = [
            BilledDay(r.provider, r.day, bool(r.cost_known), bool(r.usage_known))
            for r in conn.execute(
                select(ReconciledDay.provider, ReconciledDay.day, ReconciledDay.cost_known, ReconciledDay.usage_known)
                .where(ReconciledDay.provider.in_(wanted), *_window(ReconciledDay.day, since, until))
                .order_by(ReconciledDay.provider, ReconciledDay.day)
            )
        ]
        amount = func.sum(BilledCost.amount)
        amounts = [
            BilledAmount(r.provider, r.day, r.model, Decimal(r.amount))
            for r in conn.execute(
                select(BilledCost.provider, BilledCost.day, BilledCost.model, amount.label("amount"))
                .where(BilledCost.provider.in_(wanted), *_window(BilledCost.day, since, until))
                .group_by(BilledCost.provider, BilledCost.day, BilledCost.model)
            )
        ]
        tokens = [
            BilledTokens(r.provider, r.day, r.model, int(r.input_tokens), int(r.output_tokens))
            for r in conn.execute(
                select(
                    BilledUsage.provider,
                    BilledUsage.day,
                    BilledUsage.model,
                    BilledUsage.input_tokens,
                    BilledUsage.output_tokens,
                ).where(BilledUsage.provider.in_(wanted), *_window(BilledUsage.day, since, until))
            )
        ]
    return days, amounts, tokens
