"""The call commands: ``cost`` (price one call), ``record``, ``import`` (files of calls), ``demo``,
``verify`` (recompute a logged call) and ``test-call``. Each parses its flags and calls one use case.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.cli.common import BadInput, _engine
from core.money import format_exact_usd, to_text

COUNT_FLAGS = (
    "--cached-input-tokens",
    "--cache-write-tokens",
    "--cache-write-1h-tokens",
    "--reasoning-tokens",
    "--web-search-calls",
)


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
