"""``python -m core``: the command line. Exit 0 on success, 2 on bad input (one line on stderr)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from core.cli.common import EXIT_BAD_INPUT, BadInput, _engine
from core.config import ConfigError
from core.money import MoneyError, format_exact_usd, format_total, format_usd, to_text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prefixes "argument --x: " to a type error that already starts with "--x: "
        message = re.sub(r"^argument (\S+): \1: ", r"\1: ", message)
        raise BadInput(f"{self.prog}: {message}")


COUNT_FLAGS = (
    "--cached-input-tokens",
    "--cache-write-tokens",
    "--cache-write-1h-tokens",
    "--reasoning-tokens",
    "--web-search-calls",
)


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


def _at(text: str | None) -> datetime | None:
    from core.times import parse_timestamp

    return None if text is None else parse_timestamp(text, "--at")


def _breakdown_json(b: Any) -> dict[str, Any]:
    return {
        "provider": b.provider,
        "model": b.model,
        "matched_by": b.matched_by,
        "pricing_id": b.pricing_id,
        "input_tokens": b.input_tokens,
        "output_tokens": b.output_tokens,
        "cached_input_tokens": b.cached_input_tokens,
        "input_token_cost": to_text(b.input_token_cost),
        "output_token_cost": to_text(b.output_token_cost),
        "cached_input_token_cost": to_text(b.cached_input_token_cost),
        "cost_per_request": to_text(b.cost_per_request),
        "cache_write_tokens": b.cache_write_tokens,
        "cache_write_1h_tokens": b.cache_write_1h_tokens,
        "reasoning_tokens": b.reasoning_tokens,
        "web_search_calls": b.web_search_calls,
        "service_tier": b.service_tier,
        "requested_service_tier": b.requested_service_tier,
        "tier": b.tier,
        "cache_write_token_cost": to_text(b.cache_write_token_cost),
        "cache_write_1h_token_cost": to_text(b.cache_write_1h_token_cost),
        "reasoning_token_cost": to_text(b.reasoning_token_cost),
        "cost_per_web_search": to_text(b.cost_per_web_search),
        "cost_input": to_text(b.cost_input),
        "cost_output": to_text(b.cost_output),
        "cost_web_search": to_text(b.cost_web_search),
        "cost_request": to_text(b.cost_request),
        "cost_total": to_text(b.cost_total),
        "reason": b.reason,
    }


def _stored_json(b: Any, cost_total: Decimal, matched_by: str, **extra: Any) -> dict[str, Any]:
    """A stored call: its price breakdown, with the cost and match as stored, plus ids."""
    out = _breakdown_json(b)
    out.update(cost_total=to_text(cost_total), matched_by=matched_by, **extra)
    return out


def _print_breakdown(b: Any) -> None:
    from core.pricing.formula import formula_lines

    print(f"{b.provider} / {b.model}: matched by {b.matched_by} — {b.reason}")
    print("\n".join(formula_lines(b)))


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


def _call_values(args: argparse.Namespace) -> dict[str, Any]:
    """The call the flags describe: token flags, or ``--usage`` (a provider's usage object) instead of them."""
    counts: dict[str, Any] = {
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        **{flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in COUNT_FLAGS},
    }
    tier = args.service_tier
    if args.usage is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in counts.items() if value]
        if given:
            raise BadInput(f"--usage: given together with {', '.join(given)}; use one or the other")
        try:
            usage = json.loads(args.usage)
        except json.JSONDecodeError as exc:
            raise BadInput(f"--usage: not JSON ({exc.msg} at column {exc.colno}): {args.usage[:60]!r}") from None
        from core.recording.calls import usage_counts

        counts = usage_counts(usage)
        reported = counts.pop("service_tier", None)
        if reported and tier == "standard":
            tier = reported
    else:
        for name in ("input_tokens", "output_tokens"):
            if counts[name] is None:
                raise BadInput(f"--{name.replace('_', '-')}: required (or give --usage)")
    return {**counts, "service_tier": tier}


def cmd_cost(args: argparse.Namespace) -> int:
    from core.pricing.lookup import calculate_cost

    values = _call_values(args)
    b = calculate_cost(
        _engine(read_only=True),
        args.provider,
        args.model,
        values.pop("input_tokens"),
        values.pop("output_tokens"),
        values.pop("cached_input_tokens"),
        _at(args.at),
        **values,
    )
    if args.json:
        print(json.dumps(_breakdown_json(b)))
    else:
        _print_breakdown(b)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from core.recording.audit import verify_call
    from core.recording.calls import make_call, record_usage

    values = _call_values(args)
    engine = _engine()
    call = make_call(
        args.provider,
        args.model,
        values.pop("input_tokens"),
        values.pop("output_tokens"),
        values.pop("cached_input_tokens"),
        args.user,
        args.request_id,
        _at(args.at),  # parsed here so a bad value is named as --at, not timestamp
        project=args.project,
        **values,
    )
    result = record_usage(engine, call)
    stored = verify_call(engine, log_id=result.id)
    assert stored is not None
    if args.json:
        out = _stored_json(
            stored.at_its_time,
            stored.stored_cost_total,
            stored.stored_matched_by,
            pricing_id=stored.stored_pricing_id,
            id=result.id,
            request_id=result.request_id,
            duplicate=result.duplicate,
            project=stored.project,
        )
        print(json.dumps(out))
    elif result.duplicate:
        print(f"request_id {result.request_id!r} is already recorded as log #{result.id}; nothing changed")
    else:
        _print_breakdown(stored.at_its_time)
        print(f"recorded as log #{result.id}")
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``: a number with its noun, singular or plural."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _line_list(lines: list[int], total: int, shown: int = 20) -> str:
    text = ", ".join(str(n) for n in lines[:shown])
    return text + (f" and {total - shown:,} more" if total > shown else "")


def cmd_import(args: argparse.Namespace) -> int:
    from core.recording.importer import ImportResult, import_file

    interactive = sys.stderr.isatty()

    def progress(result: ImportResult) -> None:
        if interactive:
            print(f"\r{result.lines_read:,} rows read, {result.taken:,} taken", end="", file=sys.stderr, flush=True)

    result = import_file(_engine(), args.file, progress=progress, strict=args.strict)
    if interactive:
        print(file=sys.stderr)
    refused = len(result.refused)
    if not result.written:
        print(f"nothing written (--strict): {_count(refused, 'row')} refused, {_count(result.taken, 'row')} good")
    else:
        print(f"{_count(result.taken, 'row')} taken, {result.duplicates} already recorded, {refused} refused")
    for line, reason in result.refused:
        print(f"line {line}: {reason}", file=sys.stderr)
    if result.duplicates:
        print(
            f"already recorded, skipped: {'line' if result.duplicates == 1 else 'lines'} "
            f"{_line_list(result.duplicate_lines, result.duplicates)}",
            file=sys.stderr,
        )
    return 1 if result.refused else 0  # a script can tell a partial import (the counts are printed above)


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from core.pricing.seeding import initialize_default_pricing
    from core.recording.demo import load_demo, remove_demo

    engine = _engine()
    if args.remove:
        removed = remove_demo(engine)
        print(f"removed {removed:,} demo calls; real calls are kept")
        return 0
    initialize_default_pricing(engine)
    started = time.perf_counter()
    interactive = sys.stderr.isatty()

    def progress(done: int) -> None:
        if interactive:
            print(f"\r{done:,} / {args.rows:,} calls", end="", file=sys.stderr, flush=True)

    result = load_demo(engine, days=args.days, rows=args.rows, progress=progress)
    if interactive:
        print(file=sys.stderr)
    print(f"recorded {result.recorded:,} demo calls over {args.days} days in {time.perf_counter() - started:.1f} s")
    if result.recorded < args.rows:
        print(f"{args.rows - result.recorded:,} were recorded by an earlier run; `demo --remove` deletes them all")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from core.recording.audit import verify_call

    target = args.target.strip()
    if not target:
        raise BadInput("LOG_ID|REQUEST_ID: empty (give a log id or a request id)")
    engine = _engine(read_only=True)
    v = None
    if target.isascii() and target.isdigit() and 1 <= int(target) <= 2**62:  # a log id, else an all-digit request id
        v = verify_call(engine, log_id=int(target))
    if v is None:
        v = verify_call(engine, request_id=target)
    if v is None:
        raise BadInput(f"LOG_ID|REQUEST_ID: no logged call has the log id or request id {target!r}")
    if args.json:
        print(
            json.dumps(
                {
                    "id": v.id,
                    "request_id": v.request_id,
                    "timestamp": v.timestamp.isoformat(),
                    "provider": v.provider,
                    "model": v.model,
                    "stored_cost_total": to_text(v.stored_cost_total),
                    "stored_matched_by": v.stored_matched_by,
                    "stored_pricing_id": v.stored_pricing_id,
                    "cost_total_at_its_time": to_text(v.at_its_time.cost_total),
                    "matched_by_at_its_time": v.at_its_time.matched_by,
                    "pricing_id_at_its_time": v.at_its_time.pricing_id,
                    "cost_total_today": to_text(v.today.cost_total),
                    "matched_by_today": v.today.matched_by,
                    "pricing_id_today": v.today.pricing_id,
                    "matches": v.matches,
                }
            )
        )
        return 0
    parts = [f"{v.input_tokens} in", f"{v.output_tokens} out"] + [
        f"{count} {name}"
        for name, count in (
            ("cache read", v.cached_input_tokens),
            ("cache write 5m", v.cache_write_tokens),
            ("cache write 1h", v.cache_write_1h_tokens),
            ("reasoning", v.reasoning_tokens),
            ("web searches", v.web_search_calls),
        )
        if count
    ]
    tier = f", {v.service_tier} tier" if v.service_tier != "standard" else ""
    project = f", project {v.project}" if v.project else ""
    print(f"log #{v.id} {v.timestamp.isoformat()} {v.provider} / {v.model}: {', '.join(parts)}{tier}{project}")
    print(f"stored cost:               {format_exact_usd(v.stored_cost_total)} ({v.stored_matched_by})")
    print(f"at the prices of its time: {format_exact_usd(v.at_its_time.cost_total)} ({v.at_its_time.matched_by})")
    print(f"at today's prices:         {format_exact_usd(v.today.cost_total)} ({v.today.matched_by})")
    print("the stored cost is right" if v.matches else "MISMATCH: the stored cost differs from the prices of its time")
    return 0


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


def cmd_budgets(args: argparse.Namespace) -> int:
    from core.cli.budgets import run

    return run(args, lambda: _engine(read_only=args.budgets_command == "list"))


def cmd_test_call(args: argparse.Namespace) -> int:
    """Provider failures exit 1 with one line; bad input (names, prompt) exits 2 through ``main``."""
    from core.recording.testcall import DEFAULT_PROMPT, TestCallError, make_test_call

    try:
        result = make_test_call(
            _engine(), args.provider, args.model, args.prompt or DEFAULT_PROMPT, timeout=float(args.timeout)
        )
    except TestCallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out = _stored_json(
            result.breakdown,
            result.stored_cost_total,
            result.stored_matched_by,
            id=result.log_id,
            request_id=result.request_id,
            duplicate=result.duplicate,
            reply=result.reply,
        )
        print(json.dumps(out))
    elif result.duplicate:
        print(f"response id {result.request_id!r} is already recorded as log #{result.log_id}; nothing changed")
    else:
        print(f"reply: {result.reply or '(empty)'}")
        _print_breakdown(result.breakdown)
        print(f"recorded as log #{result.log_id} (request_id {result.request_id})")
    return 0


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
