"""``python -m core prices sync [--dry-run] [--json]``.

``add_sync_command(prices_sub)`` registers ``sync`` on the ``prices`` group's
sub-parsers (``core.cli.prices.add_prices_commands`` returns them), as that module asks:
``prices_command`` set with ``set_defaults`` and the handler in ``PRICES_COMMANDS``.
"""

from __future__ import annotations

import argparse
import json


def add_sync_command(prices_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sync = prices_sub.add_parser(
        "sync",
        help="bring in the installed genai-prices catalog (dated changes, tiers, service tiers)",
        description=(
            "Apply the genai-prices package's prices as price versions. A value is applied only when it "
            "differs from the last value applied from the package, so edits survive until the package changes."
        ),
    )
    sync.add_argument("--dry-run", action="store_true", help="write nothing; list what would change")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(prices_command="sync")
    from core.cli.prices import PRICES_COMMANDS

    PRICES_COMMANDS["sync"] = cmd_sync


def cmd_sync(args: argparse.Namespace) -> int:
    from core.config import check_environment
    from core.pricing.catalog.sync import sync_package
    from core.storage.engine import make_engine
    from core.storage.migrate import create_tables

    check_environment()
    engine = make_engine()
    create_tables(engine)
    result = sync_package(engine, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    lines = result.lines()
    if not lines:
        c = result.conversion
        print(
            f"genai-prices {c.package_version}: prices are up to date ({c.models_priced} models priced, "
            f"{sum(c.skipped.values())} skipped)"
        )
    for line in lines:
        print(line)
    return 0
