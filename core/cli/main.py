"""``python -m core`` / ``spendboard``: the parser and the dispatch. Exit 0 on success, 2 on bad input
(one line on stderr); each command lives in the module of its family (``calls``, ``report``, ``setup``,
``prices``, ``budgets``, ``keys``, ``limits``, ``reconcile``, ``customers``, ``anomalies``, ``export``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.cli.calls import COUNT_FLAGS, cmd_cost, cmd_demo, cmd_import, cmd_record, cmd_test_call, cmd_verify
from core.cli.common import EXIT_BAD_INPUT, BadInput, _engine
from core.cli.report import cmd_report
from core.cli.setup import cmd_init, cmd_rebuild_rollups, cmd_reprice, cmd_reset_admin_password
from core.config import ConfigError
from core.money import MoneyError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prefixes "argument --x: " to a type error that already starts with "--x: "
        message = re.sub(r"^argument (\S+): \1: ", r"\1: ", message)
        raise BadInput(f"{self.prog}: {message}")


def _non_negative_int(name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        from core.pricing.rates import PricingError
        from core.pricing.validation import validate_tokens

        try:
            return validate_tokens(text, name)
        except PricingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


def _positive_int(name: str, maximum: int):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not 1 <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a whole number from 1 to {maximum:,}")
        return int(text)

    parse.__name__ = name
    return parse


def _program_name() -> str:
    """``spendboard`` when run as the installed command, else ``python -m core``."""
    return "spendboard" if sys.argv and sys.argv[0].endswith("spendboard") else "python -m core"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_program_name(), description="Spendboard: price, record and report LLM API usage.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("init", help="create tables and seed prices (idempotent)")

    def call_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--provider", required=True)
        p.add_argument("--model", required=True)
        p.add_argument("--input-tokens", type=_non_negative_int("--input-tokens"), help="all input tokens")
        p.add_argument("--output-tokens", type=_non_negative_int("--output-tokens"), help="all output tokens")
        for flag in COUNT_FLAGS:
            p.add_argument(flag, default=0, type=_non_negative_int(flag))
        p.add_argument("--service-tier", default="standard", help="standard, batch, flex or priority")
        p.add_argument("--project")
        p.add_argument("--usage", help="a provider's usage object as JSON, instead of the token flags")
        p.add_argument("--at", help="ISO time (default now; UTC where no offset)")
        p.add_argument("--json", action="store_true")

    call_args(sub.add_parser("cost", help="price a call without recording it"))
    record = sub.add_parser("record", help="record one call")
    call_args(record)
    record.add_argument("--user")
    record.add_argument("--request-id")

    imp = sub.add_parser("import", help="import calls from CSV or JSON Lines")
    imp.add_argument("file")
    imp.add_argument(
        "--strict",
        action="store_true",
        help="all or nothing: check the whole file first, write nothing (exit 1) if any row is refused",
    )

    demo = sub.add_parser("demo", help="write synthetic usage ending now")
    demo.add_argument("--days", type=_positive_int("--days", 3650), default=90)
    demo.add_argument("--rows", type=_positive_int("--rows", 100_000_000), default=20_000)
    demo.add_argument("--remove", action="store_true", help="delete the demo calls (real calls are kept)")

    verify = sub.add_parser("verify", help="recompute a logged call's cost (by log id or request id)")
    verify.add_argument("target", metavar="LOG_ID|REQUEST_ID", help="all digits: a log id first, else a request id")
    verify.add_argument("--json", action="store_true")

    report = sub.add_parser("report", help="spend totals, as the dashboard shows them")
    report.add_argument("--since")
    report.add_argument("--until")
    report.add_argument("--by", choices=["day", "provider", "model", "user", "project", "tag"], default="day")
    report.add_argument("--tz", default="UTC")
    for name in ("provider", "model", "user", "project"):
        report.add_argument(f"--{name}", help=f"only calls of this {name}")
    report.add_argument(
        "--tag", action="append", default=[], help="only calls carrying this tag (repeatable: all must match)"
    )
    report.add_argument("--json", action="store_true")

    rebuild = sub.add_parser("rebuild-rollups", help="recompute the roll-ups from the logs and check them")
    rebuild.add_argument("--json", action="store_true")

    reprice = sub.add_parser("reprice", help="re-price calls stored at the estimate once a real price exists")
    # re-pricing only ever touches calls stored at the estimate; the flag is kept for scripts that pass it
    reprice.add_argument("--only-estimated", action="store_true", help="the default (and only) mode")
    reprice.add_argument("--since")
    reprice.add_argument("--json", action="store_true")

    sub.add_parser("reset-admin-password", help="replace the price editor's password with a new one, shown once")

    # test-call (issue 6): one real chat completion via HF_BASE_URL with HF_TOKEN, recorded
    test_call = sub.add_parser("test-call", help="send one small chat completion (HF_TOKEN) and record it")
    test_call.add_argument("--provider", default="huggingface")
    test_call.add_argument("--model", default="openai/gpt-oss-120b:groq")
    test_call.add_argument("--prompt", default=None, help="a short question (default: a one-line sum)")
    test_call.add_argument("--timeout", type=_positive_int("--timeout", 600), default=60, help="seconds")
    test_call.add_argument("--json", action="store_true")

    # network ingestion (issue 12): the HTTP API alone, and its API keys
    serve = sub.add_parser("serve", help="serve the ingestion HTTP API alone (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_positive_int("--port", 65535), default=8000)
    serve.add_argument("--workers", type=_positive_int("--workers", 64), default=1)
    from core.cli.dashboard import add_arguments as dashboard_arguments

    dashboard_arguments(sub, _positive_int)
    keys = sub.add_parser("keys", help="API keys of the ingestion HTTP API")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    keys_create = keys_sub.add_parser("create", help="make a key, printed once (only its hash is kept)")
    keys_create.add_argument("--name", required=True)
    keys_create.add_argument("--project", help="tag the calls this key sends that name no project")
    from core.ingest.keys import DEFAULT_SCOPE, SCOPES

    keys_create.add_argument(
        "--scope",
        choices=SCOPES,
        default=DEFAULT_SCOPE,
        help="ingest (the ingestion routes, default), read (/api/v1/spend, /metrics), check (/api/v1/check) or all",
    )
    keys_create.add_argument("--json", action="store_true")
    keys_list = keys_sub.add_parser("list", help="every key: prefix, scope, project, created, last used, revoked")
    keys_list.add_argument("--json", action="store_true")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key by name: it gets 401 from now on")
    keys_revoke.add_argument("name")

    from core.cli.prices import add_prices_commands  # parsers only; the handlers import lazily
    from core.cli.sync import add_sync_command  # prices sync (issue 10)

    add_sync_command(add_prices_commands(sub))
    # budgets (issue 13): add | list | check; the arguments live with the feature
    from core.cli.budgets import add_arguments as budget_arguments

    budget_arguments(sub.add_parser("budgets", help="budgets and threshold alerts: add, list, check"))
    # reconciliation (issue 20): fetch | import | report against the provider's own bill
    from core.cli.reconcile import add_arguments as reconcile_arguments

    reconcile_arguments(sub.add_parser("reconcile", help="the provider's own bill against the computed one"))

    # customers and statements (issue 23): the arguments live with the feature
    from core.cli.customers import add_arguments as customer_arguments

    customer_arguments(sub)

    # anomalies (issue 25): the listing, and the alert webhooks that receive them
    from core.cli.anomalies import add_alerts_arguments, add_anomalies_arguments

    add_anomalies_arguments(sub.add_parser("anomalies", help="hours whose spend is far above the key's usual"))
    add_alerts_arguments(sub.add_parser("alerts", help="webhooks for anomalies: add, list, remove"))

    from core.cli.export import add_arguments as export_arguments

    export_arguments(sub)  # export --format focus (issue 24)

    from core.cli.limits import add_arguments as check_arguments  # issue 21: enforced budgets

    check_arguments(sub.add_parser("check", help="may this user spend this? (enforced budgets; --reserve holds it)"))
    return parser


def cmd_budgets(args: argparse.Namespace) -> int:
    from core.cli.budgets import run

    return run(args, lambda: _engine(read_only=args.budgets_command == "list"))


def cmd_prices(args: argparse.Namespace) -> int:
    from core.cli.prices import run

    return run(args)


COMMANDS = {
    "init": cmd_init,
    "cost": cmd_cost,
    "record": cmd_record,
    "import": cmd_import,
    "demo": cmd_demo,
    "verify": cmd_verify,
    "report": cmd_report,
    "rebuild-rollups": cmd_rebuild_rollups,
    "reprice": cmd_reprice,
    "test-call": cmd_test_call,
    "reset-admin-password": cmd_reset_admin_password,
    "prices": cmd_prices,
    "serve": lambda args: _ingest_command(args),
    "keys": lambda args: _ingest_command(args),
    "budgets": cmd_budgets,
    "customers": lambda args: _customers(args),
    "statement": lambda args: _customers(args),
    "anomalies": lambda args: _anomalies(args),
    "alerts": lambda args: _anomalies(args),
    "check": lambda args: _check_command(args),
    "dashboard": lambda args: _dashboard(args),
    "reconcile": lambda args: _reconcile(args),
    "export": lambda args: _export(args),
}


def _reconcile(args: argparse.Namespace) -> int:
    from core.cli.reconcile import run

    return run(args, lambda: _engine(read_only=args.reconcile_command == "report"))


def _customers(args: argparse.Namespace) -> int:
    from core.cli.customers import run

    reads = args.command == "statement" or getattr(args, "customers_command", None) == "list"
    return run(args, lambda: _engine(read_only=reads))


def _anomalies(args: argparse.Namespace) -> int:
    from core.cli.anomalies import run_alerts, run_anomalies

    # `anomalies` judges the hours not judged yet before it lists them: it writes, like `alerts`
    return (run_anomalies if args.command == "anomalies" else run_alerts)(args, _engine)


def _export(args: argparse.Namespace) -> int:
    from core.cli.export import run

    return run(args, lambda: _engine(read_only=True))


def _dashboard(args: argparse.Namespace) -> int:
    from core.cli.dashboard import run

    return run(args, init=lambda: main(["init"]))


def _check_command(args: argparse.Namespace) -> int:
    from core.cli.limits import run

    return run(args, _engine)


def _ingest_command(args: argparse.Namespace) -> int:
    """``serve`` and ``keys`` (network ingestion) live in core/cli/keys.py."""
    from core.cli.keys import run

    return run(args, lambda: _engine(read_only=getattr(args, "keys_command", None) == "list"))


def main(argv: Sequence[str] | None = None) -> int:
    from core.pricing.rates import PricingError
    from core.recording.calls import CallError
    from core.recording.importer import ImportFileError
    from core.storage.engine import (
        CONNECTION_ERRORS,
        DatabaseBusyError,
        DatabaseSchemaError,
        database_error,
        is_lock_error,
    )
    from core.times import TimeError

    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (
        BadInput,
        ConfigError,
        MoneyError,
        PricingError,
        TimeError,
        CallError,
        ImportFileError,
        DatabaseSchemaError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CONNECTION_ERRORS as exc:  # a bad URL, an unreachable server, a refused login, a missing database
        if is_lock_error(exc):
            print(f"error: the database is locked by another writer ({exc.__class__.__name__})", file=sys.stderr)
            return 1
        from core.recording.overflow import is_sum_overflow

        if is_sum_overflow(exc):  # a sum stored by an older release past what SQLite keeps exactly
            print(
                "error: overflow: a sum of the stored calls is past 2^63-1 pico-dollars (USD 9.2M), the most SQLite "
                "keeps exactly; PostgreSQL (DATABASE_URL) is the way past it",
                file=sys.stderr,
            )
            return 1
        print(f"error: {database_error(exc)}", file=sys.stderr)  # type: ignore[arg-type]
        return EXIT_BAD_INPUT
