"""Anomalies: the cost of one hour's pass at BENCH_CALLS calls and BENCH_USERS users (issue 25: <= 1 s at 10M / 10,000).

A database of BENCH_CALLS calls (default 1M) spread evenly over 35 days (five weeks: every hour has its
four baseline weeks), BENCH_USERS users (default 10,000, Zipf-like), 50 projects and 20 models of 5
providers, is built once per backend (BENCH_BACKENDS) by raw inserts in time order (sqlite3
``executemany``; PostgreSQL ``COPY``) and ``rebuild_rollups``, then measured:

- ``judge_hour``: one complete hour judged (all four scopes: the series' five hours, the log's time index
  over five one-hour ranges, and the first-call check of the keys the rule flags), median of 5;
- ``run_pass`` when an hour has just ended (the server's loop once an hour: judge it, store, state);
- ``run_pass`` when nothing changed (the loop's every-5-s tick).

    BENCH_CALLS=10000000 BENCH_BACKENDS=sqlite python bench/bench_anomalies.py
"""

from __future__ import annotations

import io
import os
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from common import OUT, backends, figure, fresh_database, timed
from sqlalchemy import Engine, delete, func, select

from core.anomalies import service
from core.recording.rollups import rebuild_rollups
from core.storage.anomaly_tables import AnomalyRecord
from core.storage.engine import make_engine
from core.storage.tables import Setting, UsageRecord

CALLS = int(os.environ.get("BENCH_CALLS", "1000000"))
USERS = int(os.environ.get("BENCH_USERS", "10000"))
DAYS = 35
PROJECTS = 50
PROVIDERS = ("openai", "anthropic", "google", "mistral", "groq")
MODELS = [(p, f"model-{p}-{i}") for p in PROVIDERS for i in range(4)]
END = datetime(2026, 11, 5, tzinfo=UTC)  # a Thursday; the judged hours are in the last day
BATCH = 50_000
COLUMNS = (
    "timestamp, provider, model, user_id, project, input_tokens, output_tokens, cached_input_tokens, "
    "cost_input, cost_output, cost_total, matched_by, recorded_at, cache_write_tokens, cache_write_1h_tokens, "
    "reasoning_tokens, web_search_calls, service_tier, status, cost_web_search, cost_request"
)


def _calls(seed: int = 7):  # type: ignore[no-untyped-def]
    """(timestamp, provider, model, user, project, input, output, cost_in_pico, cost_out_pico), in time order."""
    rnd = random.Random(seed)
    weights = [1 / (i + 1) ** 0.9 for i in range(USERS)]
    users = [f"user-{i:05d}" for i in range(USERS)]
    start = END - timedelta(days=DAYS)
    step = DAYS * 86400 / CALLS
    chunk = 10_000
    for base in range(0, CALLS, chunk):
        picked = rnd.choices(users, weights, k=min(chunk, CALLS - base))
        for j, user in enumerate(picked):
            at = start + timedelta(seconds=(base + j) * step)
            provider, model = MODELS[rnd.randrange(len(MODELS))]
            tin, tout = rnd.randrange(100, 4000), rnd.randrange(10, 800)
            yield (
                at,
                provider,
                model,
                user,
                f"project-{int(user[-5:]) % PROJECTS}",
                tin,
                tout,
                tin * 2_000_000,
                tout * 8_000_000,
            )


def _build_sqlite(url: str) -> None:
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    statement = f"INSERT INTO api_usage_logs ({COLUMNS}) VALUES ({', '.join('?' * 21)})"  # noqa: S608
    rows = []
    for at, p, m, u, pr, tin, tout, cin, cout in _calls():
        stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
        rows.append(
            (
                stamp,
                p,
                m,
                u,
                pr,
                tin,
                tout,
                0,
                cin,
                cout,
                cin + cout,
                "exact",
                stamp,
                0,
                0,
                0,
                0,
                "standard",
                "ok",
                0,
                0,
            )
        )
        if len(rows) == BATCH:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(statement, rows)
            db.execute("COMMIT")
            rows = []
    if rows:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(statement, rows)
        db.execute("COMMIT")
    db.close()


def _build_postgresql(engine: Engine) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY api_usage_logs ({COLUMNS}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            buffer = io.StringIO()
            for n, (at, p, m, u, pr, tin, tout, cin, cout) in enumerate(_calls(), 1):
                stamp = at.isoformat()
                money = [f"{c / 10**12:.12f}" for c in (cin, cout, cin + cout)]
                buffer.write(
                    f"{stamp}\t{p}\t{m}\t{u}\t{pr}\t{tin}\t{tout}\t0\t{money[0]}\t{money[1]}\t{money[2]}\texact\t{stamp}"
                    "\t0\t0\t0\t0\tstandard\tok\t0\t0\n"
                )
                if n % BATCH == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()


def database(backend: str) -> Engine:
    name = f"anomalies_{CALLS}_{USERS}"
    url = f"sqlite:///{OUT / f'{name}.db'}" if backend == "sqlite" else None
    if url is not None and (OUT / f"{name}.db").exists():
        engine = make_engine(url)
        with engine.connect() as conn:
            if conn.execute(select(func.max(UsageRecord.id))).scalar() == CALLS:
                return engine
        engine.dispose()
    engine = fresh_database(backend, name)
    print(f"  building {CALLS:,} calls, {USERS:,} users ({backend}) ...", flush=True)
    started = time.perf_counter()
    if backend == "sqlite":
        _build_sqlite(str(engine.url))
    else:
        _build_postgresql(engine)
    built = time.perf_counter() - started
    rebuild_rollups(engine)
    if backend == "postgresql":
        from sqlalchemy import text

        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"  built in {built:.0f} s (+ roll-ups: {time.perf_counter() - started - built:.0f} s)", flush=True)
    return engine


def _reset(engine: Engine, through: datetime) -> None:
    """State as if every hour before ``through`` was judged (and nothing stored), so one pass judges one hour."""
    with engine.begin() as conn:
        conn.execute(delete(AnomalyRecord))
        conn.execute(delete(Setting).where(Setting.key.like("anomalies.%")))
    with engine.connect() as conn:
        calls, fixes = service.store.last_ids(conn)
    service.store.write_found(
        engine, [], service.store.State(through - timedelta(days=7), through, calls, fixes), through
    )


def measure(engine: Engine, label: str) -> None:
    hour = END - timedelta(hours=10)  # a weekday afternoon hour of the last day
    with engine.connect() as conn:
        in_hour = conn.execute(
            select(func.count()).where(UsageRecord.timestamp >= hour, UsageRecord.timestamp < hour + timedelta(hours=1))
        ).scalar()
    print(f"{label}: {in_hour:,} calls in the judged hour", flush=True)
    first = time.perf_counter()
    found = service.judge_hour(engine, hour)
    cold = time.perf_counter() - first
    figure(f"anomalies: judge one hour, first run ({label})", cold * 1000, "ms", calls_in_hour=in_hour)
    warm = timed(lambda: service.judge_hour(engine, hour))
    figure(f"anomalies: judge one hour, median of 5 ({label})", warm * 1000, "ms", found=len(found))

    def hourly_pass() -> None:
        _reset(engine, hour)
        service.run_pass(engine, hour + timedelta(hours=1, seconds=5))

    figure(f"anomalies: run_pass as an hour ends ({label})", timed(hourly_pass) * 1000, "ms")
    idle = timed(lambda: service.run_pass(engine, hour + timedelta(hours=1, seconds=10)))
    figure(f"anomalies: run_pass, nothing changed ({label})", idle * 1000, "ms")


def main() -> None:
    for backend in backends():
        engine = database(backend)
        measure(engine, f"{backend}, {CALLS:,} calls, {USERS:,} users")
        engine.dispose()


if __name__ == "__main__":
    main()
