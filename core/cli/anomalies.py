"""``python -m core anomalies [--since DATE] [--json]`` and ``alerts add|list|remove``: arguments here, use cases in
``core.anomalies.service``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from sqlalchemy import Engine


def add_anomalies_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="hours from this UTC date (YYYY-MM-DD) on; default: the last 7 days")
    parser.add_argument("--json", action="store_true")


def add_alerts_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alerts_command", required=True)
    add = sub.add_parser("add", help="a webhook that receives every anomaly found from now on")
    add.add_argument("--webhook", required=True, help="http(s) URL that receives the signed anomaly.detected events")
    add.add_argument("--secret", help="whsec_ + base64 (default: generated and shown once)")
    add.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="every alert webhook, with its events delivered and pending")
    listing.add_argument("--json", action="store_true")
    remove = sub.add_parser("remove", help="remove an alert webhook by id (its pending events are dropped)")
    remove.add_argument("id", help="the alert's id, as `alerts list` shows it")


def run_anomalies(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.anomalies import service
    from core.cli.common import BadInput
    from core.money import format_usd
    from core.times import TimeError, parse_date

    since = None
    if args.since is not None:
        try:
            since = service.since_day(parse_date(args.since, "--since"))
        except TimeError as exc:
            raise BadInput(str(exc)) from None
    found = service.list_anomalies(engine_factory(), since)
    if args.json:
        print(json.dumps({"anomalies": [service.record_json(a) for a in found]}))
        return 0
    if not found:
        print("no anomalies")
        return 0
    print(f"{'hour (UTC)':<21} {'scope':<8} {'key':<32} {'spend':>12} {'usual':>12} {'ratio':>8}")
    for a in found:
        ratio = f"{a.ratio}x" if a.ratio is not None else "-"
        late = "  (found late)" if a.late else ""
        print(
            f"{a.hour:%Y-%m-%d %H:%M}{'':<5} {a.scope:<8} {a.key:<32} {format_usd(a.spend):>12} "
            f"{format_usd(a.baseline):>12} {ratio:>8}{late}"
        )
    return 0


def run_alerts(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.anomalies import service

    try:
        if args.alerts_command == "add":
            spec = service.validate_alert(args.webhook, args.secret)
            added = service.add_alert(engine_factory(), spec)
            if args.json:
                secret = added.secret if added.generated else None
                print(json.dumps({"id": added.alert.id, "webhook": added.alert.webhook_url, "secret": secret}))
            else:
                print(f"alert #{added.alert.id}: anomalies found from now on go to {added.alert.webhook_url}")
                if added.generated:
                    print(f"webhook secret (shown once; receivers verify signatures with it): {added.secret}")
            return 0
        if args.alerts_command == "remove":
            service.remove_alert(engine_factory(), args.id)
            print(f"alert #{args.id} removed")
            return 0
        rows = service.list_alerts(engine_factory())
        if args.json:
            out = [
                {
                    "id": a.id,
                    "webhook": a.webhook_url,
                    "created_at": a.created_at.isoformat().replace("+00:00", "Z"),
                    "disabled": a.webhook_disabled_at is not None,
                    "delivered": delivered,
                    "pending": pending,
                }
                for a, delivered, pending in rows
            ]
            print(json.dumps({"alerts": out}))
        else:
            if not rows:
                print("no alerts (add one with `alerts add --webhook URL`)")
            for a, delivered, pending in rows:
                off = " (disabled after HTTP 410)" if a.webhook_disabled_at is not None else ""
                print(f"#{a.id} {a.webhook_url}{off}: {delivered} delivered, {pending} pending")
        return 0
    except service.AlertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
