"""``make bench``: every benchmark in one run, with the machine and date; figures also go to bench/out/results.jsonl.

Sizes: BENCH_SIZES (default ``10k,1m``; ``BENCH_SIZES=10k,1m,10m make bench`` adds 10M calls).
PostgreSQL too when TEST_DATABASE_URL is set (each benchmark uses schemas of its own named bench_*).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_ingest.py",
    "bench_indexes.py",
    "bench_pricing.py",
    "bench_catalog.py",
    "bench_queries.py",
    "bench_cardinality.py",
    "bench_log_indexes.py",
    "bench_app.py",
    "bench_http.py",
]


def main() -> int:
    sys.path.insert(0, str(HERE))
    from common import backends, machine, sizes

    print(f"Spendboard benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"sizes: {', '.join(label for label, _ in sizes())}; backends: {', '.join(backends())}")
    failed = 0
    for script in SCRIPTS:
        print(f"\n== {script}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / script)], cwd=HERE, env=os.environ.copy())
        failed += done.returncode != 0
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
