"""``reconcile report --by model`` over 365 days (issue 20: at 10M calls in <= 1 s, from the roll-ups).

For each backend (BENCH_BACKENDS), a database of BENCH_CALLS demo calls (default 1,000,000) over
the last 365 days is built once (``load_demo``: every call recorded and rolled up) and reused; the
providers' bills for every day and model are then stored as a fetch would (the computed cost per
day and model, a little off on some days, under the provider's dated ids). A baseline database of
BENCH_BASELINE_CALLS calls (default 10,000) is built the same way in the same run. Printed: the
build time, and the command ``reconcile report --by model --since D-364 --until D --json`` run
in-process as the command line runs it (a new engine each time, so the price index is read
cold), median of 5, with its ratio to the baseline; and once as a separate process.

Run: ``BENCH_CALLS=3000000 /work/main/.venv/bin/python bench/bench_reconcile.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from common import OUT, ROOT, backends, demo_database, figure, machine, timed
from sqlalchemy import Engine

from core.cli.main import main as cli
from core.reconcile.lines import CostLine, Fetched, UsageLine, day_range
from core.reconcile.report import PROVIDERS, computed_by_day, reconcile
from core.reconcile.store import store_fetched

CALLS = int(os.environ.get("BENCH_CALLS", "1000000"))
BASELINE = int(os.environ.get("BENCH_BASELINE_CALLS", "10000"))
DAYS = 365
DATED = {  # the ids a provider's report names where the demo logs the alias
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
}


def store_bills(engine: Engine, first: datetime, last: datetime) -> int:
    """A bill for every day and model: the computed cost, 3 % higher every 7th day; returns lines stored."""
    rows = computed_by_day(engine, PROVIDERS, first.date(), last.date(), by_model=True)
    lines = 0
    for provider in PROVIDERS:
        costs, usage = [], []
        for p, day, model, cost, _calls, tokens_in, tokens_out in rows:
            if p != provider:
                continue
            billed = cost * Decimal("1.03") if day.toordinal() % 7 == 0 else cost
            name = DATED.get(model, model)
            costs.append(CostLine(provider, day, name, "output", billed.quantize(Decimal("1e-12"))))
            usage.append(UsageLine(provider, day, name, tokens_in, tokens_out, 0, 0, 0, None))
        days = day_range(first.date(), last.date() + timedelta(days=1))
        lines += store_fetched(engine, Fetched(provider, tuple(costs), tuple(usage), days, days)).lines
    return lines


def command(url: str, since: str, until: str) -> dict:
    out = io.StringIO()
    os.environ["DATABASE_URL"] = url
    with contextlib.redirect_stdout(out):
        code = cli(["reconcile", "report", "--by", "model", "--since", since, "--until", until, "--json"])
    assert code == 0, code
    return json.loads(out.getvalue())


def measure(backend: str, label: str, calls: int) -> tuple[float, int]:
    engine, url, built = demo_database(backend, f"reconcile_{label}", calls, days=DAYS)
    if built is not None:
        figure(f"build {label} ({calls:,} calls, 365 days), {backend}", built, "s")
    today = datetime.now(UTC)
    first = today - timedelta(days=DAYS + 1)
    stored = store_bills(engine, first, today)
    since, until = (today - timedelta(days=DAYS - 1)).date().isoformat(), today.date().isoformat()
    body = command(url, since, until)
    seconds = timed(lambda: command(url, since, until))
    check = reconcile(engine, since=first.date(), until=today.date(), by="model")
    print(
        f"  {label}: {len(body['rows']):,} rows, {stored:,} bill lines stored, billed {body['totals']['billed']}, "
        f"computed {body['totals']['computed']}, statuses "
        f"{sorted({r.status for r in check.rows})}",
        flush=True,
    )
    engine.dispose()
    return seconds, len(body["rows"])


def main() -> None:
    print(f"# reconcile report --by model over {DAYS} days: {machine()}")
    for backend in backends():
        base, _ = measure(backend, f"{BASELINE // 1000}k", BASELINE)
        figure(f"reconcile report --by model, {BASELINE:,} calls, {backend}", base * 1000, "ms")
        label = f"{CALLS / 1_000_000:g}m" if CALLS >= 1_000_000 else f"{CALLS // 1000}k"
        seconds, rows = measure(backend, label, CALLS)
        figure(
            f"reconcile report --by model, {CALLS:,} calls, {backend}",
            seconds * 1000,
            "ms",
            baseline=f"{BASELINE:,} calls",
            ratio=seconds / base,
            rows=rows,
        )
        if backend == "sqlite":
            url = f"sqlite:///{OUT / f'demo_reconcile_{label}.db'}"
            today = datetime.now(UTC).date()
            argv = [sys.executable, "-m", "core", "reconcile", "report", "--by", "model", "--json"]
            argv += ["--since", (today - timedelta(days=DAYS - 1)).isoformat(), "--until", today.isoformat()]
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "DATABASE_URL": url})
            elapsed = (time.perf_counter() - started) * 1000
            figure(f"the same as a new process (python -m core ...), {backend}", elapsed, "ms")


if __name__ == "__main__":
    main()
