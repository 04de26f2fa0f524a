"""``report``: spend totals, the figures the dashboard shows and ``GET /api/v1/spend`` answers."""

from __future__ import annotations

import argparse
import json

from core.cli.common import BadInput, _engine
from core.money import format_total


def cmd_report(args: argparse.Namespace) -> int:
    """The figures of ``GET /api/v1/spend`` too: both call core.reporting.spend."""
    from core.reporting.spend import SpendArgumentError, figures_json, parse_spend_query, spend_figures

    filters = {name: getattr(args, name) for name in ("provider", "model", "user", "project")}
    try:
        query = parse_spend_query(args.since, args.until, args.by, args.tz, filters, args.tag or (), prefix="--")
    except SpendArgumentError as exc:
        raise BadInput(str(exc)) from None
    figures = spend_figures(_engine(read_only=True), query)
    if args.json:
        print(json.dumps(figures_json(figures)))
        return 0
    rows, total = figures.rows, figures.total
    label = "day" if args.by == "day" else args.by
    print(f"{label:<40} {'calls':>10} {'cost':>16}")
    for r in rows:
        key = r.period.isoformat() if args.by == "day" and r.period else str(r.key)
        print(f"{key:<40} {r.totals.calls:>10,} {format_total(r.totals.cost_total):>16}")
    print(f"{'total':<40} {total.calls:>10,} {format_total(total.cost_total):>16}")
    if args.by == "tag":
        print("a call counts under each of its tags: the rows overlap; the total counts each call once")
    if total.estimated_calls:
        print(f"{total.estimated_calls} calls had no price; counted at the $1/1M estimate")
    return 0
