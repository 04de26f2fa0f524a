"""The customers' database side: the customers table, and one month of calls per customer in SQL.

A call's customer is one ``CASE`` over the customers in the order they were added (the first
rule that matches wins), so a call is never billed twice; the month's lines are summed per
(customer, provider, model) by the database over the month's range of the log's time index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, exists, func, insert, literal, select, type_coerce
from sqlalchemy.exc import IntegrityError

from core.customers.rules import Customer, CustomerError, CustomerSpec
from core.customers.statement import StatementLine
from core.storage.columns import Money
from core.storage.customer_tables import Customer as CustomerRow
from core.storage.engine import run_write
from core.storage.tables import UsageRecord
from core.storage.tag_tables import CallTag


def _customer(row: Any) -> Customer:
    return Customer(row.id, row.name, row.match_kind, row.match_value, Decimal(row.markup))


def load_customers(engine: Engine) -> list[Customer]:
    """Every customer, in the order they were added (the order their rules are tried in)."""
    with engine.connect() as conn:
        return [_customer(row) for row in conn.execute(select(CustomerRow.__table__).order_by(CustomerRow.id))]


def insert_customer(engine: Engine, spec: CustomerSpec, now: datetime) -> Customer:
    """Store a new customer; a name already taken is refused (the unique name decides, also under races)."""

    def work(conn: Connection) -> Customer:
        taken = conn.execute(select(CustomerRow.id).where(CustomerRow.name == spec.name)).first()
        if taken is not None:
            raise CustomerError(f"--name: {spec.name!r} is already a customer")
        new_id = conn.execute(
            insert(CustomerRow)
            .values(
                name=spec.name,
                match_kind=spec.match_kind,
                match_value=spec.match_value,
                markup=str(spec.markup),
                created_at=now,
            )
            .returning(CustomerRow.id)
        ).scalar_one()
        return Customer(new_id, spec.name, spec.match_kind, spec.match_value, spec.markup)

    try:
        return run_write(engine, work)
    except IntegrityError:
        raise CustomerError(f"--name: {spec.name!r} is already a customer") from None


def delete_customer(engine: Engine, name: str) -> bool:
    def work(conn: Connection) -> bool:
        return conn.execute(delete(CustomerRow).where(CustomerRow.name == name)).rowcount > 0

    return run_write(engine, work)


def _matches(customer: Customer) -> Any:
    logs = UsageRecord.__table__
    if customer.match_kind == "user":
        return logs.c.user_id == customer.match_value
    if customer.match_kind == "project":
        return logs.c.project == customer.match_value
    tags = CallTag.__table__
    return exists().where(tags.c.usage_id == logs.c.id, tags.c.tag == customer.match_value)


def customer_of(customers: Sequence[Customer]) -> Any:
    """The id of the customer a stored call belongs to (first added wins), NULL when none matches."""
    if not customers:
        return literal(None)
    return case(*[(_matches(c), literal(c.id)) for c in customers], else_=literal(None))


@dataclass(frozen=True)
class MonthLines:
    """A month's calls per customer id (``None``: matched no customer), one line per provider and model."""

    lines: dict[int | None, list[StatementLine]]


def month_lines(engine: Engine, customers: Sequence[Customer], start: datetime, end: datetime) -> MonthLines:
    """Calls in [start, end) summed per (customer, provider, model) in one query."""
    logs = UsageRecord.__table__
    owner = customer_of(customers).label("customer_id")
    inner = (
        select(owner, logs.c.provider, logs.c.model, logs.c.input_tokens, logs.c.output_tokens, logs.c.cost_total)
        .where(logs.c.timestamp >= start, logs.c.timestamp < end)
        .subquery("calls")
    )
    query = select(
        inner.c.customer_id,
        inner.c.provider,
        inner.c.model,
        func.count().label("calls"),
        func.coalesce(func.sum(inner.c.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(inner.c.output_tokens), 0).label("output_tokens"),
        type_coerce(func.sum(inner.c.cost_total), Money()).label("cost"),  # exact on both databases
    ).group_by(inner.c.customer_id, inner.c.provider, inner.c.model)
    found: dict[int | None, list[StatementLine]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            line = StatementLine(
                row.provider, row.model, int(row.calls), int(row.input_tokens), int(row.output_tokens), row.cost
            )
            found.setdefault(None if row.customer_id is None else int(row.customer_id), []).append(line)
    return MonthLines(found)
