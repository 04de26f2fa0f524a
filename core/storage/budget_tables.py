"""Budget tables: the budgets, the outbox of threshold crossings, and every delivery attempt.

The outbox row is the deduplication: ``(budget_id, period_start, threshold, subject)`` is
unique (``subject``: the user or project of an ``each:`` budget, else empty), so however
many calls, processes or restarts see a crossing, it is written once, and delivery only ever reads the outbox.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.storage import anomaly_tables  # noqa: F401 - the outbox's anomaly rows point at its tables
from core.storage.tables import Base, BigId

# event status
PENDING = "pending"  # waiting for its (next) attempt
DELIVERED = "delivered"  # a 2xx answer
FAILED = "failed"  # every retry failed
DISABLED = "disabled"  # the receiver answered 410: the budget's webhook is off
NO_WEBHOOK = "no_webhook"  # recorded for the history; the budget has nowhere to send it


class Budget(Base):
    """A spending limit for one period (day, ISO week, month in a zone) and scope."""

    __tablename__ = "budgets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'USD'"))
    period: Mapped[str] = mapped_column(String(10))  # day | week | month
    tz: Mapped[str] = mapped_column(String(64), server_default=text("'UTC'"))
    # all | provider | model | user | project | each (scope_value "user" or "project": every one on its own)
    scope_kind: Mapped[str] = mapped_column(String(10), server_default=text("'all'"))
    scope_value: Mapped[str | None] = mapped_column(String(300))
    enforce: Mapped[bool] = mapped_column(default=False, server_default=text("false"))  # a hard limit: checks deny
    thresholds: Mapped[str] = mapped_column(String(200))  # "50,80,100": distinct whole percents, ascending
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(200))  # whsec_ + base64
    webhook_format: Mapped[str] = mapped_column(String(10), server_default=text("'standard'"))  # standard | slack
    webhook_disabled_at: Mapped[datetime | None]  # set when the receiver answered 410
    created_at: Mapped[datetime]

    @property
    def threshold_list(self) -> list[int]:
        return [int(t) for t in self.thresholds.split(",") if t]

    @property
    def scope(self) -> str:
        return "all" if self.scope_kind == "all" else f"{self.scope_kind}:{self.scope_value}"


class BudgetEvent(Base):
    """One threshold crossed in one period of one budget, or one anomaly for one alert webhook (the outbox).

    An anomaly's row keeps its hour as the period, its spend, and its baseline as ``amount``.
    """

    __tablename__ = "budget_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    budget_id: Mapped[int | None] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))  # None: an anomaly
    # an anomaly's event (issue 25): the webhook it goes to and the anomaly; both None for a budget's
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    anomaly_id: Mapped[int | None] = mapped_column(ForeignKey("anomalies.id", ondelete="CASCADE"))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    threshold: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300), default="", server_default=text("''"))  # each: user/project
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)  # the same on every attempt
    spend: Mapped[Decimal]  # spend in the period when the crossing was found
    amount: Mapped[Decimal]  # the budget's amount then
    late: Mapped[bool] = mapped_column(default=False)  # found after its period had closed
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]  # a sender's lease; an expired lease may be taken again
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("budget_id", "period_start", "threshold", "subject", name="uq_budget_event_key"),
        Index("ix_budget_events_due", "status", "next_attempt_at"),
        UniqueConstraint("alert_id", "anomaly_id", name="uq_alert_event"),  # one event per webhook and anomaly
    )


class BudgetDelivery(Base):
    """One attempt to deliver an event: what was answered, and when the next one is due."""

    __tablename__ = "budget_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("budget_events.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(12))  # delivered | retry | failed | disabled
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
