"""``customers add|list|remove`` and ``statement``: arguments here, use cases in ``core.customers.service``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from core.cli.common import BadInput

FORMATS = ("json", "csv", "pdf")


def add_arguments(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``customers`` family and ``statement`` (argparse only: the rest is imported when a command runs)."""
    customers = sub.add_parser("customers", help="customers billed by user, project or tag, with a markup")
    family = customers.add_subparsers(dest="customers_command", required=True)
    add = family.add_parser("add", help="add a customer (the first added wins a call matching two)")
    add.add_argument("--name", required=True)
    add.add_argument("--match", required=True, help="user:U, project:P or tag:T")
    add.add_argument("--markup", default="0", help="percent added to cost (negative for a discount); default 0")
    add.add_argument("--json", action="store_true")
    listing = family.add_parser("list", help="every customer, in the order they were added")
    listing.add_argument("--json", action="store_true")
    remove = family.add_parser("remove", help="remove a customer by name")
    remove.add_argument("name")

    statement = sub.add_parser("statement", help="a customer's statement for a month (JSON, CSV or PDF)")
    statement.add_argument("--customer", required=True)
    statement.add_argument("--month", required=True, help="YYYY-MM")
    statement.add_argument("--tz", default="UTC", help="the zone whose calendar month is billed (default UTC)")
    statement.add_argument("--format", default="json", help="json, csv or pdf")
    statement.add_argument("--out", help="write to this file (default: standard output)")


def _write(data: bytes, out: str | None) -> None:
    """To the file (whole or not at all: written beside it, then renamed) or to standard output."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(out)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"--out: {out!r}: the folder {str(folder)!r} does not exist")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.customers import service
    from core.customers.statement import statement_csv, statement_json, statement_pdf

    try:
        if args.command == "statement":
            if args.format not in FORMATS:
                raise BadInput(f"--format: {args.format!r} is not one of {', '.join(FORMATS)}")
            found = service.statement_for(engine_factory(), args.customer, args.month, args.tz)
            if args.format == "json":
                data = (json.dumps(statement_json(found), indent=2) + "\n").encode()
            elif args.format == "csv":
                data = statement_csv(found).encode()
            else:
                data = statement_pdf(found)
            _write(data, args.out)
            if args.out:
                totals = found.totals
                print(
                    f"statement for {found.customer} {found.month} ({found.tz}): {totals.calls:,} calls, "
                    f"billable {totals.billable} USD, written to {args.out}",
                    file=sys.stderr,
                )
            return 0
        engine = engine_factory()
        if args.customers_command == "add":
            added = service.add_customer(engine, args.name, args.match, args.markup)
            if args.json:
                print(json.dumps(_as_json(added)))
            else:
                print(f"customer #{added.id} {added.name!r}: calls of {added.match}, markup {added.markup}%")
            return 0
        if args.customers_command == "list":
            customers = service.list_customers(engine)
            if args.json:
                print(json.dumps({"customers": [_as_json(c) for c in customers]}))
                return 0
            if not customers:
                print("no customers yet: python -m core customers add --name NAME --match project:P")
            for c in customers:
                print(f"#{c.id} {c.name}: {c.match}, markup {c.markup}%")
            return 0
        removed = service.remove_customer(engine, args.name)
        print(f"customer {removed.name!r} removed ({removed.match})")
        return 0
    except ValueError as exc:  # CustomerError, StatementError, MarkupError, TimeError: each names its field
        raise BadInput(str(exc)) from None


def _as_json(customer: object) -> dict[str, object]:
    from core.customers.rules import Customer

    assert isinstance(customer, Customer)
    return {"id": customer.id, "name": customer.name, "match": customer.match, "markup": str(customer.markup)}
