"""Customer use cases for the CLI and the Customers page: add, list, remove, statements, the month at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from core.customers import store
from core.customers.rules import Customer, CustomerError, parse_name, validate
from core.customers.statement import Statement, StatementTotals, build_statement, month_bounds, parse_month
from core.times import TimeError, now_utc, zone


def add_customer(engine: Engine, name: object, match: object, markup: object = "0") -> Customer:
    """Check every field, then store; a name already taken is refused naming ``--name``."""
    return store.insert_customer(engine, validate(name, match, markup), now_utc())


def list_customers(engine: Engine) -> list[Customer]:
    return store.load_customers(engine)


def find_customer(engine: Engine, name: object, field: str = "--customer") -> Customer:
    wanted = parse_name(name, field)
    for customer in store.load_customers(engine):
        if customer.name == wanted:
            return customer
    raise CustomerError(f"{field}: {wanted!r} is not a customer (see `customers list`)")


def remove_customer(engine: Engine, name: object) -> Customer:
    found = find_customer(engine, name, "NAME")
    store.delete_customer(engine, found.name)
    return found


def _period(month: object, tz: object) -> tuple[str, str, datetime, datetime]:
    try:
        parse_month(month, field="--month")
        zone_name = "UTC" if tz is None else str(tz).strip() or "UTC"
        zone(zone_name, "--tz")
    except TimeError as exc:
        raise CustomerError(str(exc)) from None
    start, end = month_bounds(str(month), zone_name)
    return str(month), zone_name, start, end


def statement_for(engine: Engine, name: object, month: object, tz: object = "UTC") -> Statement:
    """The customer's statement for a month in zone ``tz``: its calls (first added wins) per provider and model."""
    customer = find_customer(engine, name)
    month_text, zone_name, start, end = _period(month, tz)
    lines = store.month_lines(engine, store.load_customers(engine), start, end).lines.get(customer.id, [])
    return build_statement(customer.name, month_text, zone_name, customer.markup, lines)


@dataclass(frozen=True)
class CustomerMonth:
    customer: Customer
    totals: StatementTotals


@dataclass(frozen=True)
class MonthOverview:
    """Every customer's month, and the calls of the month that matched no customer."""

    month: str
    tz: str
    customers: list[CustomerMonth]
    unmatched_calls: int
    unmatched_cost: Decimal


def month_overview(engine: Engine, month: object, tz: object = "UTC") -> MonthOverview:
    """One query for the month: each customer's cost, billable and margin, and what matched nobody."""
    month_text, zone_name, start, end = _period(month, tz)
    customers = store.load_customers(engine)
    found = store.month_lines(engine, customers, start, end).lines
    rows = [
        CustomerMonth(c, build_statement(c.name, month_text, zone_name, c.markup, found.get(c.id, [])).totals)
        for c in customers
    ]
    unmatched = found.get(None, [])
    return MonthOverview(
        month_text,
        zone_name,
        rows,
        sum(line.calls for line in unmatched),
        sum((line.cost for line in unmatched), Decimal(0)),
    )


def current_month(tz: object = "UTC", now: datetime | None = None) -> str:
    """``YYYY-MM`` of now in zone ``tz``."""
    local = (now or now_utc()).astimezone(zone(str(tz or "UTC"), "tz"))
    return f"{local.year:04d}-{local.month:02d}"
