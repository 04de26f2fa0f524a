"""Setting a database up and keeping it right: ``init``, ``rebuild-rollups``, ``reprice`` and
``reset-admin-password``.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

from core.cli.common import BadInput, _engine
from core.money import format_usd, to_text


def cmd_init(args: argparse.Namespace) -> int:
    from core.config import check_environment
    from core.pricing.seeding import initialize_default_pricing
    from core.storage.engine import make_engine
    from core.storage.migrate import upgrade_database

    check_environment()  # a bad setting is refused before the database is touched
    engine = make_engine()
    changes = upgrade_database(engine)  # empty: made at head; older: upgraded in place
    changes += initialize_default_pricing(engine)
    from core.admin.password import bootstrap_admin_password, env_password_notice

    password = bootstrap_admin_password(engine, announce=False)
    if password:
        changes.append(f"admin password for editing prices (shown once, only its hash is kept): {password}")
    for change in changes:
        print(change)
    if not changes:
        print("nothing to change: tables and prices are up to date")
    notice = env_password_notice(engine)
    if notice:
        print(notice)
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from core.recording.rollups import check_rollups, rebuild_rollups

    engine = _engine()
    count = rebuild_rollups(engine)
    check = check_rollups(engine)
    if args.json:
        print(
            json.dumps(
                {"calls": count, "matches": check.matches, "cost_total": to_text(Decimal(check.raw["cost_total"]))}
            )
        )
    else:
        print(
            f"rebuilt roll-ups from {count:,} calls; "
            + ("they equal the raw sums exactly" if check.matches else "MISMATCH with the raw sums")
        )
    return 0 if check.matches else 1


def cmd_reprice(args: argparse.Namespace) -> int:
    from core.recording.audit import reprice_estimated
    from core.times import local_midnight, parse_date, zone

    since = local_midnight(parse_date(args.since, "--since"), zone("UTC")) if args.since else None
    result = reprice_estimated(_engine(), since)
    if args.json:
        print(
            json.dumps(
                {
                    "examined": result.examined,
                    "repriced": result.repriced,
                    "cost_before": to_text(result.cost_before),
                    "cost_after": to_text(result.cost_after),
                }
            )
        )
    else:
        print(
            f"{result.repriced} of {result.examined} estimated calls re-priced: "
            f"{format_usd(result.cost_before)} -> {format_usd(result.cost_after)}"
        )
    return 0


def cmd_reset_admin_password(args: argparse.Namespace) -> int:
    from core.admin.password import reset_admin_password
    from core.config import admin_password

    if admin_password():
        raise BadInput("SPENDBOARD_ADMIN_PASSWORD is set, and it wins over a stored password: change it there")
    password = reset_admin_password(_engine())
    print(f"new admin password (shown once, only its hash is kept): {password}")
    return 0
