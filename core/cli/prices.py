"""``python -m core prices ...``: import, list and show the history of price versions.

``add_prices_commands`` makes the ``prices`` sub-parser; more ``prices`` commands are
added there. Imports of the domain stay inside the handlers, so building the parser is cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def add_prices_commands(sub: Any) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Add ``prices`` with its own sub-commands to the CLI's sub-parsers; returns them to extend.

    A new sub-command sets ``prices_command`` with ``set_defaults`` and registers its handler
    in ``PRICES_COMMANDS``.
    """
    prices = sub.add_parser("prices", help="price versions: import, list, history")
    commands = prices.add_subparsers(dest=argparse.SUPPRESS, required=True, parser_class=type(prices))

    imp = commands.add_parser("import", help="import price versions from JSON Lines or CSV (USD per token)")
    imp.set_defaults(prices_command="import")
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")

    listing = commands.add_parser("list", help="the price versions in force now")
    listing.set_defaults(prices_command="list")
    listing.add_argument("--provider")
    listing.add_argument("--json", action="store_true")

    history = commands.add_parser("history", help="every version of one model, every service tier, oldest first")
    history.set_defaults(prices_command="history")
    history.add_argument("--provider", required=True)
    history.add_argument("--model", required=True)
    history.add_argument("--json", action="store_true")
    return commands  # type: ignore[no-any-return]


def cmd_prices_import(args: argparse.Namespace) -> int:
    from core.cli.common import BadInput, _engine
    from core.pricing.edits import ImportedVersion, check_file_version, import_versions
    from core.pricing.files import PriceFileError, read_price_file
    from core.pricing.versions import PriceEditError

    try:
        lines = read_price_file(args.file)
    except PriceFileError as exc:
        raise BadInput(str(exc)) from None
    good: list[ImportedVersion] = []
    refused: list[tuple[int, str]] = []
    for number, mapping, problem in lines:
        if mapping is None:
            refused.append((number, problem or "unreadable"))
            continue
        try:
            good.append(check_file_version(number, mapping))
        except PriceEditError as exc:
            refused.append((number, str(exc)))
    result = import_versions(_engine(), good)
    refused.sort()
    if args.json:
        print(
            json.dumps(
                {
                    "taken": len(result.taken),
                    "unchanged": result.unchanged,
                    "refused": [{"line": n, "reason": r} for n, r in refused],
                    "ids": result.taken,
                }
            )
        )
    else:
        taken = len(result.taken)
        print(
            f"{taken} price version{'' if taken == 1 else 's'} taken, {result.unchanged} unchanged, "
            f"{len(refused)} refused"
        )
    for number, reason in refused:
        print(f"line {number}: {reason}", file=sys.stderr)
    return 0


def _describe(row: Any) -> str:
    from core.money import format_per_million, format_usd
    from core.pricing.versions import RATE_FIELDS

    parts = []
    for spec in RATE_FIELDS:
        value = row.rate(spec.column)
        if value is None:
            continue
        name = spec.column.replace("_token_cost", "").replace("cost_", "")
        parts.append(f"{name} {format_per_million(value) if spec.per_token else format_usd(value)}")
    for tier in row.tiers:
        rates = ", ".join(
            f"{c.replace('_token_cost', '').replace('cost_', '')} {format_per_million(v)}" for c, v in tier.rates
        )
        parts.append(f"above {tier.above_input_tokens:,} input tokens: {rates}")
    return "; ".join(parts)


def _since(row: Any) -> str:
    from core.times import BEGINNING_OF_TIME

    return "always" if row.effective_from <= BEGINNING_OF_TIME else f"from {row.effective_from:%Y-%m-%d %H:%M} UTC"


def cmd_prices_list(args: argparse.Namespace) -> int:
    from core.pricing.versions import current_prices, version_json

    rows = current_prices(_engine_lazy(), provider=args.provider)
    if args.json:
        print(json.dumps({"provider": args.provider, "prices": [version_json(r) for r in rows]}))
        return 0
    for r in rows:
        print(f"{r.provider} / {r.model_name} [{r.service_tier}] {_since(r)}, {r.source}: {_describe(r)}")
    print(f"{len(rows)} price{'' if len(rows) == 1 else 's'} in force")
    return 0


def cmd_prices_history(args: argparse.Namespace) -> int:
    from core.cli.common import BadInput
    from core.pricing.versions import model_history, version_json

    rows = model_history(_engine_lazy(), args.provider, args.model)
    if not rows:
        raise BadInput(f"--model: no price versions for {args.provider}/{args.model}")
    if args.json:
        print(
            json.dumps(
                {
                    "provider": rows[0].provider,
                    "model": rows[-1].model_name,
                    "versions": [version_json(r) for r in rows],
                }
            )
        )
        return 0
    for r in rows:
        state = "retired" if r.retired else _describe(r)
        who = r.changed_by or r.source
        print(
            f"#{r.id} [{r.service_tier}] {_since(r)}, {r.source} by {who}: {state}" + (f" ({r.note})" if r.note else "")
        )
    return 0


def _engine_lazy() -> Any:
    """The database for ``prices list`` and ``history``: only read, so never created here."""
    from core.cli.common import _engine

    return _engine(read_only=True)


PRICES_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "import": cmd_prices_import,
    "list": cmd_prices_list,
    "history": cmd_prices_history,
}


def run(args: argparse.Namespace) -> int:
    return PRICES_COMMANDS[args.prices_command](args)
