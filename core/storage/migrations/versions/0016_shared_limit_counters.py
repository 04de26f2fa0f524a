"""Enforced budgets share their counters: one row per (scope, subject, period), not per budget.

``limit_counters`` and ``limit_holds`` were keyed by budget, so recording wrote one counter
row per enforced budget (per user of an ``each:`` budget) and a reserving check one hold
per budget. Now a counter is the spend of a scope (``all``, a provider, a model, a user, a
project) in one period (its UTC start and end), read by every budget of that scope and
period; a hold is on such a counter. The checks each budget denied move to ``limit_denials``.

Every counter row is kept as a stale row of its scope's counter (spend is a cache of the
roll-ups: the next check sums it again); every hold is kept, once per counter (a reserve
held the same estimate on each budget of one scope and period); the counter's ``held`` is
the sum of its holds; every denial count is kept.

Revision ID: 0016_shared_limit_counters
Revises: 0015_enforced_limits
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from core.storage.columns import Money, UTCDateTime
from core.times import local_midnight, next_period, period_start

revision = "0016_shared_limit_counters"
down_revision = "0015_enforced_limits"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# what a budget's counter is: the scope kind (an each: budget's dimension) and its subject
KIND = "CASE WHEN b.scope_kind = 'each' THEN b.scope_value ELSE b.scope_kind END"
SUBJECT = "CASE WHEN b.scope_kind = 'each' THEN {s} WHEN b.scope_kind = 'all' THEN '' ELSE b.scope_value END"
SCOPES = "('all', 'provider', 'model', 'user', 'project', 'each')"


def _create_new() -> None:
    op.create_table(
        "limit_counters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("scope_kind", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("spend", Money(), nullable=False),
        sa.Column("held", Money(), nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("corrections_seen", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("scope_kind", "period_start", "period_end", "subject", name="uq_limit_counter_scope"),
    )
    op.create_table(
        "limit_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("scope_kind", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_limit_holds_request", "limit_holds", ["request_id"])
    op.create_index(
        "ix_limit_holds_counter", "limit_holds", ["scope_kind", "period_start", "period_end", "subject", "expires_at"]
    )
    op.create_table(
        "limit_denials",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("denied", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("budget_id", "period_start", "subject", name="uq_limit_denial_key"),
    )


def _create_old() -> None:
    op.create_table(
        "limit_counters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("spend", Money(), nullable=False),
        sa.Column("held", Money(), nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("corrections_seen", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("denied", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("budget_id", "subject", "period_start", name="uq_limit_counter_key"),
    )
    op.create_index("ix_limit_counters_rank", "limit_counters", ["budget_id", "period_start", "spend"])
    op.create_table(
        "limit_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("budget_id", BigId, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_limit_holds_request_id", "limit_holds", ["request_id"])
    op.create_index("ix_limit_holds_key", "limit_holds", ["budget_id", "subject", "period_start", "expires_at"])


def upgrade() -> None:
    op.rename_table("limit_counters", "limit_counters_0015")
    op.rename_table("limit_holds", "limit_holds_0015")
    for index in ("ix_limit_counters_rank", "ix_limit_holds_request_id", "ix_limit_holds_key"):
        op.drop_index(index)  # the names stay with the renamed tables; the new tables' indexes have their own
    _create_new()
    stale = sa.bindparam("stale", True, type_=sa.Boolean())
    op.execute(
        sa.text(
            "INSERT INTO limit_counters (scope_kind, subject, period_start, period_end, spend, held, version, stale, "  # noqa: S608 - constants only
            "corrections_seen) SELECT k.kind, k.subj, k.period_start, k.period_end, MAX(k.spend), 0, 0, :stale, 0 "
            f"FROM (SELECT {KIND} AS kind, {SUBJECT.format(s='c.subject')} AS subj, c.period_start, c.period_end, "
            "c.spend FROM limit_counters_0015 c JOIN budgets b ON b.id = c.budget_id "
            f"WHERE b.scope_kind IN {SCOPES}) k GROUP BY k.kind, k.subj, k.period_start, k.period_end"
        ).bindparams(stale)
    )
    op.execute(
        "INSERT INTO limit_holds (request_id, scope_kind, subject, period_start, period_end, amount, created_at, "  # noqa: S608 - constants only
        "expires_at) SELECT k.request_id, k.kind, k.subj, k.period_start, k.period_end, MAX(k.amount), "
        "MIN(k.created_at), MAX(k.expires_at) "
        f"FROM (SELECT h.request_id, {KIND} AS kind, {SUBJECT.format(s='h.subject')} AS subj, h.period_start, "
        "c.period_end, h.amount, h.created_at, h.expires_at FROM limit_holds_0015 h "
        "JOIN budgets b ON b.id = h.budget_id JOIN limit_counters_0015 c ON c.budget_id = h.budget_id "
        f"AND c.subject = h.subject AND c.period_start = h.period_start WHERE b.scope_kind IN {SCOPES}) k "
        "GROUP BY k.request_id, k.kind, k.subj, k.period_start, k.period_end"
    )
    op.execute(
        "UPDATE limit_counters SET held = (SELECT COALESCE(SUM(h.amount), 0) FROM limit_holds h "
        "WHERE h.scope_kind = limit_counters.scope_kind AND h.subject = limit_counters.subject "
        "AND h.period_start = limit_counters.period_start AND h.period_end = limit_counters.period_end)"
    )
    op.execute(
        "INSERT INTO limit_denials (budget_id, subject, period_start, denied) "
        "SELECT budget_id, subject, period_start, denied FROM limit_counters_0015 WHERE denied > 0"
    )
    op.drop_table("limit_holds_0015")
    op.drop_table("limit_counters_0015")


def _period(moment: datetime, period: str, tz: str) -> tuple[datetime, datetime]:
    """The budget's period holding ``moment`` (as ``core.budgets.periods.period_of``), in UTC."""
    zone = ZoneInfo(tz)
    label = period_start(moment.astimezone(zone).date(), period)
    return local_midnight(label, zone), local_midnight(next_period(label, period), zone)


def downgrade() -> None:
    """Each shared counter and hold goes back to every enforced budget of its scope and period (stale)."""
    bind = op.get_bind()
    counters = sa.table(
        "limit_counters",
        *(sa.column(n) for n in ("scope_kind", "subject", "spend")),
        sa.column("period_start", UTCDateTime()),
        sa.column("period_end", UTCDateTime()),
        sa.column("held", Money()),
    )
    holds = sa.table(
        "limit_holds",
        *(sa.column(n) for n in ("request_id", "scope_kind", "subject")),
        *(sa.column(n, UTCDateTime()) for n in ("period_start", "period_end", "created_at", "expires_at")),
        sa.column("amount", Money()),
    )
    denials = sa.table(
        "limit_denials",
        *(sa.column(n) for n in ("budget_id", "subject", "denied")),
        sa.column("period_start", UTCDateTime()),
    )
    budgets = bind.execute(sa.text("SELECT id, period, tz, scope_kind, scope_value FROM budgets WHERE enforce")).all()
    old_counters = list(bind.execute(sa.select(counters)))
    old_holds = list(bind.execute(sa.select(holds)))
    old_denials = {(r.budget_id, r.subject, r.period_start): r.denied for r in bind.execute(sa.select(denials))}
    op.drop_table("limit_denials")
    op.drop_table("limit_holds")
    op.drop_table("limit_counters")
    _create_old()

    def owners(kind: str, subject: str, start: datetime, end: datetime) -> list[tuple[int, str]]:
        found = []
        for b in budgets:
            if b.scope_kind == "each" and b.scope_value == kind:
                mine = subject
            elif b.scope_kind == kind and (kind == "all" or b.scope_value == subject):
                mine = ""
            else:
                continue
            if _period(start, b.period, b.tz) == (start, end):
                found.append((b.id, mine))
        return found

    now = datetime.now(UTC)
    new_counters = sa.table(
        "limit_counters",
        *(sa.column(n) for n in ("budget_id", "subject", "version", "stale", "corrections_seen")),
        *(sa.column(n, UTCDateTime()) for n in ("period_start", "period_end")),
        *(sa.column(n, Money()) for n in ("spend", "held")),
        sa.column("denied"),
    )
    new_holds = sa.table(
        "limit_holds",
        *(sa.column(n) for n in ("request_id", "budget_id", "subject")),
        *(sa.column(n, UTCDateTime()) for n in ("period_start", "created_at", "expires_at")),
        sa.column("amount", Money()),
    )
    rows = [
        dict(
            budget_id=budget_id,
            subject=subject,
            period_start=c.period_start,
            period_end=c.period_end,
            spend=Decimal(0),  # stale: summed again from the roll-ups
            held=c.held,
            version=0,
            stale=True,
            corrections_seen=0,
            denied=old_denials.get((budget_id, subject, c.period_start), 0),
        )
        for c in old_counters
        for budget_id, subject in owners(c.scope_kind, c.subject, c.period_start, c.period_end)
    ]
    if rows:
        bind.execute(sa.insert(new_counters), rows)
    hold_rows = [
        dict(
            request_id=h.request_id,
            budget_id=budget_id,
            subject=subject,
            period_start=h.period_start,
            amount=h.amount,
            created_at=h.created_at or now,
            expires_at=h.expires_at,
        )
        for h in old_holds
        for budget_id, subject in owners(h.scope_kind, h.subject, h.period_start, h.period_end)
    ]
    if hold_rows:
        bind.execute(sa.insert(new_holds), hold_rows)
