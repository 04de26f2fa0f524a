"""``python -m core reconcile fetch|import|report``: the provider's own bill against the computed one."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine

from core.cli.common import BadInput

EXIT_DRIFT = 1
PROVIDERS = ("openai", "anthropic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``reconcile`` sub-commands (argparse only: the rest is imported when a command runs)."""
    sub = parser.add_subparsers(dest="reconcile_command", required=True, parser_class=type(parser))
    fetch = sub.add_parser("fetch", help="fetch the provider's cost and usage reports (admin key) and store them")
    fetch.add_argument("--provider", required=True, choices=PROVIDERS)
    fetch.add_argument("--since", required=True, help="first UTC day (YYYY-MM-DD)")
    fetch.add_argument("--until", help="UTC day not included (default: tomorrow, so today is in)")
    fetch.add_argument("--json", action="store_true")
    imp = sub.add_parser("import", help="store report pages saved from the provider's Admin API")
    imp.add_argument("file")
    imp.add_argument("--provider", required=True, choices=PROVIDERS)
    imp.add_argument("--json", action="store_true")
    report = sub.add_parser("report", help="billed against computed per UTC day (and model)")
    report.add_argument("--provider", choices=PROVIDERS)
    report.add_argument("--since", help="first UTC day (included)")
    report.add_argument("--until", help="last UTC day (included)")
    report.add_argument("--by", choices=["day", "model"], default="day")
    report.add_argument("--tolerance", default="1", help="percent of the billed amount (default 1)")
    report.add_argument("--fail-on-drift", action="store_true", help="exit 1 when a row is under, over or not_billed")
    report.add_argument("--json", action="store_true")


def _date(text: str, flag: str) -> date:
    from core.times import parse_date

    return parse_date(text, flag)


def _tolerance(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise BadInput(f"--tolerance: {text!r} is not a decimal percent (e.g. 1 or 0.5)") from None
    if not value.is_finite() or value < 0:
        raise BadInput(f"--tolerance: {text!r} is not a non-negative decimal percent (e.g. 1 or 0.5)")
    return value


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.reconcile.errors import ReconcileError

    try:
        if args.reconcile_command == "fetch":
            return _fetch(args, engine_factory)
        if args.reconcile_command == "import":
            return _import(args, engine_factory)
        return _report(args, engine_factory)
    except ReconcileError as exc:
        raise BadInput(str(exc)) from None


def _stored_json(stored: Any) -> str:
    from core.money import to_text

    return json.dumps(
        {
            "provider": stored.provider,
            "days": stored.days,
            "lines": stored.lines,
            "billed_total": to_text(stored.billed_total),
        }
    )


def _stored_text(stored: Any, verb: str) -> str:
    from core.money import format_usd

    return (
        f"{stored.provider}: {verb} {stored.days} day{'s' if stored.days != 1 else ''}, "
        f"{stored.lines} cost line{'s' if stored.lines != 1 else ''}, billed {format_usd(stored.billed_total)}"
    )


def _fetch(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.reconcile.service import check_settings, fetch_and_store
    from core.times import now_utc

    since = _date(args.since, "--since")
    until = _date(args.until, "--until") if args.until else now_utc().date() + timedelta(days=1)
    if until <= since:
        raise BadInput(f"--until: {until} is not after --since {since} (--until is not included)")
    check_settings(args.provider)
    engine = engine_factory()
    stored = fetch_and_store(engine, args.provider, since, until)
    print(_stored_json(stored) if args.json else _stored_text(stored, "stored"))
    return 0


def _import(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.reconcile.files import read_pages
    from core.reconcile.store import store_fetched

    fetched = read_pages(args.file, args.provider)  # the whole file is read before the database is touched
    stored = store_fetched(engine_factory(), fetched)
    print(_stored_json(stored) if args.json else _stored_text(stored, "imported"))
    return 0


def report_json(result: Any) -> dict[str, Any]:
    """The contract's JSON: rows and totals, money as decimal strings."""
    from core.money import to_text

    def money(value: Decimal | None) -> str | None:
        return None if value is None else to_text(value)

    def pct(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    rows = []
    for row in result.rows:
        out: dict[str, Any] = {"provider": row.provider, "day": row.day.isoformat()}
        if result.by == "model":
            out["model"] = row.model
        out.update(
            billed=money(row.billed),
            computed=money(row.computed),
            delta=money(row.delta),
            delta_pct=pct(row.delta_pct),
            billed_input_tokens=row.billed_input_tokens,
            billed_output_tokens=row.billed_output_tokens,
            logged_input_tokens=row.logged_input_tokens,
            logged_output_tokens=row.logged_output_tokens,
            status=row.status,
        )
        rows.append(out)
    t = result.totals
    return {
        "rows": rows,
        "totals": {
            "billed": money(t.billed),
            "computed": money(t.computed),
            "delta": money(t.delta),
            "delta_pct": pct(t.delta_pct),
        },
    }


def _report(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.money import format_usd
    from core.reconcile.report import reconcile

    since = _date(args.since, "--since") if args.since else None
    until = _date(args.until, "--until") if args.until else None
    if since and until and until < since:
        raise BadInput(f"--until: {until} is before --since {since}")
    tolerance = _tolerance(args.tolerance)
    result = reconcile(
        engine_factory(), provider=args.provider, since=since, until=until, by=args.by, tolerance=tolerance
    )
    if args.json:
        print(json.dumps(report_json(result)))
    else:
        model = args.by == "model"
        head = f"{'provider':<10} {'day':<10} " + (f"{'model':<32} " if model else "")
        print(head + f"{'billed':>14} {'computed':>14} {'delta':>12} {'delta %':>8}  status")
        for row in result.rows:
            line = f"{row.provider:<10} {row.day.isoformat():<10} " + (
                f"{(row.model or '')[:32]:<32} " if model else ""
            )
            billed = format_usd(row.billed) if row.billed is not None else "-"
            delta = format_usd(row.delta) if row.delta is not None else "-"
            pct = f"{row.delta_pct}%" if row.delta_pct is not None else "-"
            line += f"{billed:>14} {format_usd(row.computed):>14} {delta:>12} {pct:>8}  {row.status}"
            if row.status != "match":
                line += f" ({row.cause})"
            print(line)
        t = result.totals
        pct = f"{t.delta_pct}%" if t.delta_pct is not None else "-"
        label = f"{'total':<21} " + (" " * 33 if model else "")
        print(label + f"{format_usd(t.billed):>14} {format_usd(t.computed):>14} {format_usd(t.delta):>12} {pct:>8}")
        if not result.rows:
            print(
                "no bill and no calls in this range; fetch the provider's report with: reconcile fetch", file=sys.stderr
            )
    return EXIT_DRIFT if args.fail_on_drift and result.drifts else 0
