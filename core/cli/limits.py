"""``python -m core check``: may this user spend this? Arguments here, the decision in ``core.limits``.

A denial is an answer (exit 0, ``"allowed": false``); bad input exits 2 naming the flag, nothing held.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from sqlalchemy import Engine

FLAGS = {
    "estimated_cost": "--estimated-cost",
    "input_tokens": "--input-tokens",
    "output_tokens": "--output-tokens",
    "request_id": "--request-id",
    "hold_seconds": "--hold-seconds",
    "reserve": "--reserve",
    "user": "--user",
    "project": "--project",
    "provider": "--provider",
    "model": "--model",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user")
    parser.add_argument("--project")
    parser.add_argument("--provider")
    parser.add_argument("--model")
    parser.add_argument("--estimated-cost", help="USD, a non-negative decimal")
    parser.add_argument("--input-tokens", help="with --output-tokens instead of --estimated-cost: priced as a call")
    parser.add_argument("--output-tokens")
    parser.add_argument("--reserve", action="store_true", help="hold the estimate until the call is recorded")
    parser.add_argument("--request-id", help="the request id the call will be recorded with (needed by --reserve)")
    parser.add_argument("--hold-seconds", help="how long a hold lasts without its call: 1 to 86400 (default 300)")
    parser.add_argument("--json", action="store_true")


def _tokens(text: str | None) -> object:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text


def _flagged(message: str) -> str:
    field, sep, rest = message.partition(":")
    return f"{FLAGS[field]}:{rest}" if sep and field in FLAGS else message


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine]) -> int:
    from core.limits import service
    from core.money import format_usd

    engine = engine_factory()
    try:
        request = service.validate(
            engine,
            user=args.user,
            project=args.project,
            provider=args.provider,
            model=args.model,
            estimated_cost=args.estimated_cost,
            input_tokens=_tokens(args.input_tokens),
            output_tokens=_tokens(args.output_tokens),
            reserve=args.reserve,
            request_id=args.request_id,
            hold_seconds=args.hold_seconds,
        )
        decision = service.decide(engine, request)
    except service.LimitError as exc:
        print(f"error: {_flagged(str(exc))}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(decision.as_json()))
        return 0
    verdict = "allowed" if decision.allowed else "denied"
    held = f", {format_usd(request.estimated_cost)} held for {request.request_id}" if decision.held else ""
    print(f"{verdict}: {format_usd(request.estimated_cost)}{held}")
    if not decision.limits:
        print("no enforced budget applies")
    for s in decision.limits:
        who = f" ({s.subject})" if s.subject else ""
        print(
            f"  {s.budget}{who}: {format_usd(s.remaining)} left of {format_usd(s.amount)} "
            f"(spent {format_usd(s.spend)}, held {format_usd(s.held)}) until {s.period_end:%Y-%m-%d %H:%M} UTC"
        )
    return 0
