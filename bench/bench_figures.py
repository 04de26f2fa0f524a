"""Figures for other tools (issue 24): ``GET /metrics`` and ``GET /api/v1/spend`` times, and the FOCUS export.

For each backend (BENCH_BACKENDS) and size (BENCH_SIZES, default ``1m``; or BENCH_CALLS, any number),
a database of demo calls over BENCH_DAYS days (default 30: the whole database is one month) is built once
under bench/out/ and reused.
Measured in-process through Starlette's TestClient (the whole HTTP stack but the socket), median of 5
after one warm-up: ``/metrics``; ``/api/v1/spend`` by day (all time), by model in Europe/Berlin over the
last 30 days, by user over the last 7; then ``export --format focus`` of the month to CSV and to Parquet
(one run each, the rows and file size printed). Demo calls are all ``ok``; BENCH_ERROR_EVERY (default
100) marks every N-th call ``error`` once (1%), since ``/metrics`` reads error calls from their index.

    BENCH_SIZES=1m python bench/bench_figures.py
    BENCH_SIZES=1m BENCH_BACKENDS=postgresql TEST_DATABASE_URL=postgresql+psycopg://... python bench/bench_figures.py
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from datetime import UTC, datetime, timedelta

from common import OUT, backends, demo_database, figure, machine, sizes, timed
from sqlalchemy import Engine, text

from core.cli.main import main as cli
from core.ingest.keys import create_key
from core.reporting.spend import parse_spend_query, spend_json

DAYS = int(os.environ.get("BENCH_DAYS", "30"))
ERROR_EVERY = int(os.environ.get("BENCH_ERROR_EVERY", "100"))


def mark_errors(engine: Engine) -> int:
    """Every ERROR_EVERY-th call becomes an ``error`` call (once; roll-ups do not key status)."""
    with engine.begin() as conn:
        done = conn.execute(text("SELECT count(*) FROM api_usage_logs WHERE status <> 'ok'")).scalar_one()
        if done or not ERROR_EVERY:
            return int(done)
        marked = conn.execute(
            text("UPDATE api_usage_logs SET status = 'error' WHERE id % :every = 0"), {"every": ERROR_EVERY}
        )
        return int(marked.rowcount)


def measure(backend: str, label: str, rows: int) -> None:
    from starlette.testclient import TestClient

    engine, url, built = demo_database(backend, f"figures_{label}_{DAYS}d", rows, days=DAYS)
    if built is not None:
        figure(f"{backend} {label}: build ({DAYS} days of demo calls)", built, "s")
    print(f"    {mark_errors(engine):,} error calls")
    if backend == "postgresql":  # fresh statistics after the build, as a running server's autovacuum keeps them
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    os.environ["DATABASE_URL"] = url
    key = create_key(engine, f"bench-{time.time_ns()}", scope="read").key
    headers = {"Authorization": f"Bearer {key}"}
    from routes.standalone import app

    today = datetime.now(UTC).date()
    month_ago, week_ago = str(today - timedelta(days=30)), str(today - timedelta(days=7))
    with TestClient(app) as client:

        def get(path: str, **params: str) -> None:
            answer = client.get(path, params=params, headers=headers)
            assert answer.status_code == 200, answer.text

        cases = [
            ("/metrics", "/metrics", {}),
            ("/api/v1/spend (by day, all time)", "/api/v1/spend", {}),
            (
                "/api/v1/spend (by model, Europe/Berlin, 30 days)",
                "/api/v1/spend",
                {"by": "model", "tz": "Europe/Berlin", "since": month_ago},
            ),  # fmt: skip
            ("/api/v1/spend (by user, 7 days)", "/api/v1/spend", {"by": "user", "since": week_ago}),
        ]
        for name, path, params in cases:
            get(path, **params)  # warm-up: engine, schema check, caches
            figure(f"{backend} {label}: {name}", timed(lambda p=path, q=params: get(p, **q)) * 1000, "ms")
            if path == "/api/v1/spend":  # what `report --json` runs for the same arguments, without HTTP
                query = parse_spend_query(**{k: v for k, v in params.items()})
                spent = timed(lambda q=query: spend_json(engine, q)) * 1000
                figure(f"{backend} {label}:   the same as report --json (in process)", spent, "ms")
    for suffix in ("csv", "parquet"):
        out = OUT / f"focus_{backend}_{label}.{suffix}"
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()) as said:
            assert cli(["export", "--format", "focus", "--out", str(out)]) == 0, said.getvalue()
        elapsed = time.perf_counter() - started
        figure(
            f"{backend} {label}: export --format focus ({DAYS} days) to {suffix}",
            elapsed,
            "s",
            rows=said.getvalue().strip(),
            bytes=out.stat().st_size,
        )
        print(f"    {said.getvalue().strip()} ({out.stat().st_size / 1e6:.1f} MB)")
    engine.dispose()


def main() -> None:
    print(machine())
    calls = os.environ.get("BENCH_CALLS")  # any number of calls (e.g. 3000000), instead of BENCH_SIZES
    chosen = [(f"{int(calls) / 1e6:g}m", int(calls))] if calls else sizes()
    for backend in backends():
        for label, rows in chosen:
            measure(backend, label, rows)


if __name__ == "__main__":
    os.environ.setdefault("BENCH_SIZES", "1m")
    main()
