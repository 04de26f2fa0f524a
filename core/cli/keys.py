"""``python -m core serve`` and ``python -m core keys create|list|revoke``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from core.ingest.keys import ApiKeyError, KeyInfo, create_key, list_keys, revoke_key

EXIT_BAD_INPUT = 2


def run(args: argparse.Namespace, engine: Callable[[], Engine]) -> int:
    try:
        if args.command == "serve":
            return serve(args, engine)
        if args.keys_command == "create":
            return keys_create(engine(), args.name, args.project, args.json, args.scope)
        if args.keys_command == "list":
            return keys_list(engine(), args.json)
        return keys_revoke(engine(), args.name)
    except ApiKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _key_json(key: KeyInfo) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "project": key.project,
        "scope": key.scope,
        "created_at": _time(key.created_at),
        "last_used_at": _time(key.last_used_at),
        "revoked_at": _time(key.revoked_at),
    }


def keys_create(engine: Engine, name: str, project: str | None, as_json: bool, scope: str | None = None) -> int:
    new = create_key(engine, name, project, scope)
    if as_json:
        print(json.dumps({"id": new.info.id, "name": new.info.name, "key": new.key}))  # the contract's keys
    else:
        print(f"API key {new.info.name!r}, scope {new.info.scope} (shown once, only its hash is kept):")
        print(new.key)
        if new.info.project:
            print(f"calls sent with it are tagged with project {new.info.project!r} unless they name one")
    return 0


def keys_list(engine: Engine, as_json: bool) -> int:
    keys = list_keys(engine)
    if as_json:
        print(json.dumps([_key_json(k) for k in keys]))
        return 0
    if not keys:
        print("no API keys (make one with: python -m core keys create --name NAME)")
        return 0
    print(f"{'name':<24} {'prefix':<14} {'scope':<7} {'project':<16} {'created':<20} {'last used':<20} state")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        last = f"{k.last_used_at:%Y-%m-%d %H:%M:%S}" if k.last_used_at else "never"
        print(
            f"{k.name:<24} {k.prefix:<14} {k.scope:<7} {k.project or '-':<16} "
            f"{k.created_at:%Y-%m-%d %H:%M:%S}  {last:<20} {state}"
        )
    return 0


def keys_revoke(engine: Engine, name: str) -> int:
    key = revoke_key(engine, name)
    print(f"API key {key.name!r} ({key.prefix}...) revoked at {_time(key.revoked_at)}; it gets 401 from now on")
    return 0


def serve(args: argparse.Namespace, engine: Callable[[], Engine]) -> int:
    """uvicorn on ``routes.standalone:app``; the database is set up once here, before any worker starts."""
    import uvicorn

    from core.pricing.seeding import initialize_default_pricing

    root = str(Path(__file__).resolve().parents[2])  # the repository: where ``routes`` lives
    if root not in sys.path:
        sys.path.insert(0, root)
    db = engine()
    initialize_default_pricing(db)
    db.dispose()
    print(f"Spendboard ingestion API on http://{args.host}:{args.port} ({args.workers} worker(s))", flush=True)
    uvicorn.run(
        "routes.standalone:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        http="routes.server_limits:GuardedH11Protocol",  # request headers within 10 s (slowloris)
        timeout_keep_alive=5,  # idle kept-alive connections closed after 5 s
    )
    return 0
