"""``python -m core budgets add|list|check``: arguments here, use cases in ``service``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``budgets`` sub-commands (argparse only: the rest is imported when a command runs)."""
    sub = parser.add_subparsers(dest="budgets_command", required=True)
    add = sub.add_parser("add", help="add a budget (and its webhook)")
    add.add_argument("--name", required=True)
    add.add_argument("--amount", required=True, help="USD, a positive decimal")
    add.add_argument("--period", required=True, help="day, week (ISO, from Monday) or month")
    add.add_argument(
        "--scope",
        default="all",
        help="all, provider:P, model:M, user:U, project:X, tag:T, each:user or each:project",
    )
    add.add_argument("--enforce", action="store_true", help="a hard limit: checks that do not fit are denied")
    add.add_argument("--tz", default="UTC", help="the zone whose calendar the period follows")
    add.add_argument("--thresholds", default="50,80,100", help="distinct whole percents from 1 to 1000")
    add.add_argument("--webhook", help="http(s) URL that receives the signed events")
    add.add_argument("--secret", help="whsec_ + base64 (default: generated and shown once)")
    add.add_argument("--format", default="standard", help="standard (signed JSON event) or slack ({'text': ...})")
    add.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="every budget in its current period")
    listing.add_argument("--json", action="store_true")
    check = sub.add_parser("check", help="reconcile every budget and post the alerts that are due")
    check.add_argument("--json", action="store_true")


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.budgets import service
    from core.money import format_usd, to_text

    try:
        if args.budgets_command == "add":
            spec = service.validate(
                args.name,
                args.amount,
                args.period,
                args.scope,
                args.tz,
                args.thresholds,
                args.webhook,
                args.secret,
                args.format,
                args.enforce,
            )
            added = service.add_budget(engine_factory(), spec)
            b = added.budget
            if args.json:
                out = {
                    "id": b.id,
                    "name": b.name,
                    "amount": to_text(b.amount),
                    "period": b.period,
                    "tz": b.tz,
                    "scope": b.scope,
                    "enforce": b.enforce,
                    "thresholds": b.threshold_list,
                    "webhook": b.webhook_url,
                    "format": b.webhook_format,
                    "secret": added.secret if added.generated else None,
                }
                print(json.dumps(out))
            else:
                print(
                    f"budget #{b.id} {b.name!r}: {format_usd(b.amount)} per {b.period} ({b.tz}), scope {b.scope}"
                    f"{', enforced' if b.enforce else ''}, "
                    f"alerts at {', '.join(f'{t}%' for t in b.threshold_list)}"
                )
                if added.generated:
                    print(f"webhook secret (shown once; receivers verify signatures with it): {added.secret}")
            return 0
        engine = engine_factory()
        if args.budgets_command == "list":
            rows = service.list_status(engine)
            if args.json:
                print(json.dumps({"budgets": [_status_json(s) for s in rows]}))
            else:
                print(f"{'name':<24} {'spend':>14} {'amount':>14} {'percent':>8} {'projected':>14}  period")
                for s in rows:
                    projected = format_usd(s.projected) if s.projected is not None else "-"
                    print(
                        f"{s.budget.name:<24} {format_usd(s.spend):>14} {format_usd(s.budget.amount):>14} "
                        f"{s.percent:>7}% {projected:>14}  {_iso(s.period.start)} .. {_iso(s.period.end)}"
                    )
            return 0
        result = service.check(engine)
        r = result.report
        if args.json:
            out = {
                "new_events": result.new_events,
                "new_anomalies": result.new_anomalies,
                "delivered": r.delivered,
                "retrying": r.retrying,
                "failed": r.failed,
                "disabled": r.disabled,
            }
            print(json.dumps(out))
        else:
            print(
                f"{result.new_events} new alerts, {result.new_anomalies} new anomalies; "
                f"{r.delivered} delivered, {r.retrying} to retry, "
                f"{r.failed} failed for good, {r.disabled} webhooks disabled (HTTP 410)"
            )
        return 0
    except service.BudgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _status_json(s: Any) -> dict[str, Any]:
    from core.money import to_text

    return {
        "name": s.budget.name,
        "scope": s.budget.scope,
        "enforce": s.budget.enforce,
        "subject": s.subject,
        "period": s.budget.period,
        "tz": s.budget.tz,
        "amount": to_text(s.budget.amount),
        "spend": to_text(s.spend),
        "percent": to_text(s.percent),
        "projected": None if s.projected is None else to_text(s.projected),
        "projected_exceed_at": _iso(s.projected_exceed_at),
        "period_start": _iso(s.period.start),
        "period_end": _iso(s.period.end),
        "thresholds": s.budget.threshold_list,
        "crossed": list(s.crossed),
    }
