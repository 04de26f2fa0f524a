"""Shared helpers for the benchmarks: sizes, databases, timing, and one line per figure.

Benchmarks print figures; they are not tests and assert nothing. Databases are built
once under bench/out/ (git-ignored) and reused, since 10M calls take minutes to build.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402

from core.pricing.seeding import initialize_default_pricing  # noqa: E402
from core.storage.engine import make_engine  # noqa: E402
from core.storage.migrate import create_tables, upgrade_database  # noqa: E402
from core.storage.tables import UsageRecord  # noqa: E402

SIZE_NAMES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
DEFAULT_SIZES = "10k,1m"
PG_URL = os.environ.get("TEST_DATABASE_URL")
RESULTS = OUT / "results.jsonl"


def sizes() -> list[tuple[str, int]]:
    """Sizes from BENCH_SIZES (e.g. ``10k,1m,10m``); default 10k and 1M."""
    names = [n.strip().lower() for n in os.environ.get("BENCH_SIZES", DEFAULT_SIZES).split(",") if n.strip()]
    unknown = [n for n in names if n not in SIZE_NAMES]
    if unknown:
        raise SystemExit(f"BENCH_SIZES: unknown size(s) {', '.join(unknown)} (known: {', '.join(SIZE_NAMES)})")
    return [(n, SIZE_NAMES[n]) for n in names]


def backends() -> list[str]:
    """SQLite, and PostgreSQL when TEST_DATABASE_URL is set; BENCH_BACKENDS (e.g. ``postgresql``) picks some."""
    available = ["sqlite"] + (["postgresql"] if PG_URL else [])
    wanted = [n.strip() for n in os.environ.get("BENCH_BACKENDS", "").split(",") if n.strip()]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise SystemExit(f"BENCH_BACKENDS: {', '.join(unknown)} not available (have: {', '.join(available)})")
    return wanted or available


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"


def fresh_sqlite(name: str) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def pg_schema_url(schema: str, fresh: bool) -> str:
    """A URL whose search_path is a schema of its own (created, or emptied when ``fresh``)."""
    assert PG_URL is not None
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        if fresh:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


def fresh_database(backend: str, name: str) -> Engine:
    """An empty database with tables and seeded prices."""
    url = fresh_sqlite(f"{name}.db") if backend == "sqlite" else pg_schema_url(f"bench_{name}", fresh=True)
    engine = make_engine(url)
    upgrade_database(engine)  # made at head and stamped, so a later release's migrations apply to it
    initialize_default_pricing(engine)
    return engine


def demo_database(backend: str, label: str, rows: int, days: int = 90) -> tuple[Engine, str, float | None]:
    """A database of ``rows`` demo calls ending now-ish, built once and reused; returns (engine, url, build s)."""
    from core.recording.demo import load_demo

    if backend == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{OUT / f'demo_{label}.db'}"
    else:
        url = pg_schema_url(f"bench_demo_{label}", fresh=False)
    engine = make_engine(url)
    # a database built by an earlier release is upgraded as a user's is (create_all would make the new
    # tables beside the old revision's stamp, and the migration then finds them made)
    upgrade_database(engine)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    if have == rows:
        return engine, url, None
    engine.dispose()
    engine = fresh_database(backend, f"demo_{label}")
    print(f"  building {label} ({rows:,} calls, {backend}) ...", flush=True)
    started = time.perf_counter()
    load_demo(engine, days=days, rows=rows, batch_size=20_000)
    return engine, url, time.perf_counter() - started


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time of ``repeat`` runs, seconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def figure(
    measure: str, value: float, unit: str, baseline: str = "", ratio: float | None = None, **extra: object
) -> None:
    """Print one figure (and its ratio to the baseline) and keep it in bench/out/results.jsonl."""
    shown = f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"
    line = f"{measure:<58} {shown:>12} {unit:<8}"
    if ratio is not None:
        line += f"  {ratio:6.2f}x {baseline}"
    print(line, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "measure": measure, "value": value}
    record.update(unit=unit, baseline=baseline, ratio=ratio, **extra)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def executemany_rate(db: sqlite3.Connection, statement: str, rows: list, batch_size: int = 20_000) -> float:
    """Rows/s of a raw ``executemany`` of ``rows``, one transaction per ``batch_size``."""
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(statement, rows[start : start + batch_size])
        db.execute("COMMIT")
    return len(rows) / (time.perf_counter() - started)


def raw_executemany_rate(source_url: str, batch_size: int = 20_000) -> tuple[float, int]:
    """Calls/s of plain sqlite3 executemany of the stored log rows of ``source_url`` into a fresh copy of the schema."""
    source = sqlite3.connect(source_url.removeprefix("sqlite:///"))
    columns = [c.name for c in UsageRecord.__table__.columns if c.name != "id"]
    rows = source.execute(f"SELECT {', '.join(columns)} FROM api_usage_logs ORDER BY id").fetchall()  # noqa: S608
    source.close()
    target_url = fresh_sqlite("raw_executemany.db")
    engine = make_engine(target_url)
    create_tables(engine)
    initialize_default_pricing(engine)
    engine.dispose()
    target = sqlite3.connect(target_url.removeprefix("sqlite:///"), isolation_level=None)
    target.execute("PRAGMA journal_mode = WAL")
    target.execute("PRAGMA synchronous = NORMAL")
    statement = f"INSERT INTO api_usage_logs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        target.execute("BEGIN IMMEDIATE")
        target.executemany(statement, rows[start : start + batch_size])
        target.execute("COMMIT")
    elapsed = time.perf_counter() - started
    target.close()
    return len(rows) / elapsed, len(rows)
