"""Cardinality: 8 vs 10,000 users, 200 models, timestamps in random order (issue 11).

For each backend (BENCH_BACKENDS), size (BENCH_SIZES, default ``10k,1m``) and user count
(BENCH_USERS), a database of calls of 200 real priced models over 30 days is built once
through ``record_batch`` (20,000 per transaction; in random time order up to 1M calls, in
arrival order above, BENCH_ORDER to choose) and reused; PostgreSQL is measured after
VACUUM ANALYZE. Printed: the build rate, roll-up rows per call, the
Overview queries (UTC, Asia/Kolkata +5:30, Asia/Kathmandu +5:45) and ``report --by
user`` in-process (median of 5), then ``import`` of a JSON Lines file (100,000 calls,
10,000 users, random order) into a copy of the largest 10,000-user database, and
``record_batch`` against a raw ``executemany`` of the same rows into the same schema.
The same JSON Lines rows sorted by time are imported too, for comparison.

BENCH_TAG names the databases (e.g. ``base`` when running main's code for the
baseline), so two designs never share a database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from common import OUT, backends, figure, fresh_database, pg_schema_url, raw_executemany_rate, sizes, timed
from sqlalchemy import Engine, func, inspect, select, text

import core.cli.main as cli
from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import Call, record_batch
from core.reporting import aggregates as reports
from core.storage.engine import make_engine
from core.storage.migrate import create_tables, upgrade_database
from core.storage.tables import PriceVersion, UsageRecord

TAG = os.environ.get("BENCH_TAG", "r2")
DAYS = 30
MODELS = 200
PROJECTS = 50
BATCH = 20_000
IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
RAW_ROWS = int(os.environ.get("BENCH_RAW_ROWS", "200000"))
END = datetime(2026, 11, 1, tzinfo=UTC)
PROVIDERS = ("openai", "anthropic", "google", "mistral", "groq")
ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu")


def _weights(n: int, skew: float) -> list[float]:
    """Zipf-like popularity: a few users and models make most calls, as in real traffic."""
    return [1 / (i + 1) ** skew for i in range(n)]


@functools.cache
def priced_models() -> list[tuple[str, str]]:
    """MODELS real models of PROVIDERS from the shipped price table, taken in turn from each
    provider: calls priced by an exact match, as most real traffic is."""
    path = OUT / "card_models.db"
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    initialize_default_pricing(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(PriceVersion.provider, PriceVersion.model_name)
            .where(
                PriceVersion.provider.in_(PROVIDERS),
                PriceVersion.service_tier == "standard",
                PriceVersion.tiers.is_(None),
                PriceVersion.input_token_cost > 0,
            )
            .distinct()
            .order_by(PriceVersion.provider, PriceVersion.model_name)
        ).all()
    engine.dispose()
    path.unlink(missing_ok=True)
    by_provider = {p: [m for q, m in rows if q == p] for p in PROVIDERS}
    models: list[tuple[str, str]] = []
    while len(models) < MODELS and any(by_provider.values()):
        for provider in PROVIDERS:
            if by_provider[provider] and len(models) < MODELS:
                models.append((provider, by_provider[provider].pop(0)))
    return models


def random_calls(rows: int, users: int, seed: int = 3) -> Iterator[Call]:
    """``rows`` calls over the DAYS before END, each at a random moment (so in random order)."""
    rng = random.Random(seed)
    models = priced_models()
    model_weights = _weights(MODELS, 1.0)
    user_names = [f"user-{i:05d}" for i in range(users)]
    user_weights = _weights(users, 0.6)
    span = DAYS * 86400
    start = END - timedelta(seconds=span)
    for first in range(0, rows, BATCH):
        count = min(BATCH, rows - first)
        chosen_models = rng.choices(models, model_weights, k=count)
        chosen_users = rng.choices(range(users), user_weights, k=count)
        for (provider, model), user in zip(chosen_models, chosen_users, strict=True):
            tokens_in = max(1, int(rng.lognormvariate(math.log(1500), 0.6)))
            yield Call(
                start + timedelta(seconds=rng.random() * span),
                provider,
                model,
                tokens_in,
                max(1, int(rng.lognormvariate(math.log(400), 0.7))),
                0,
                user_names[user],
                None,
                project=f"project-{user % PROJECTS:02d}",
            )


def arrival_calls(rows: int, users: int, seed: int = 3) -> Iterator[Call]:
    """The same calls' shape in arrival order: each batch from its own slice of the 30 days, the
    slices in time order, the calls shuffled inside each (live traffic; how 10M is built)."""
    slices = max(1, -(-rows // BATCH))
    span = DAYS * 86400
    start = END - timedelta(seconds=span)
    for number, call in enumerate(random_calls(rows, users, seed)):
        low = span * (number // BATCH) / slices  # the slice of this call's batch
        squeezed = (call.timestamp - start).total_seconds() / slices  # its random moment, inside the slice
        yield dataclasses.replace(call, timestamp=start + timedelta(seconds=low + squeezed))


def user_counts() -> list[int]:
    """BENCH_USERS (e.g. ``10000``); default 8 and 10,000."""
    raw = os.environ.get("BENCH_USERS", "8,10000")
    try:
        counts = [int(n) for n in raw.split(",") if n.strip()]
    except ValueError:
        raise SystemExit(f"BENCH_USERS: {raw!r} is not a list of whole numbers") from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"BENCH_USERS: {raw!r} is not a list of positive numbers")
    return counts


def order_for(rows: int) -> str:
    """BENCH_ORDER (``random`` or ``arrival``); by default random up to 1M calls, arrival above."""
    order = os.environ.get("BENCH_ORDER") or ("random" if rows <= 1_000_000 else "arrival")
    if order not in ("random", "arrival"):
        raise SystemExit(f"BENCH_ORDER: {order!r} is not random or arrival")
    return order


def _url(backend: str, name: str, fresh: bool) -> str:
    if backend == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.db"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return pg_schema_url(f"bench_{name}", fresh=fresh)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        if not inspect(conn).has_table("api_usage_logs"):
            return -1
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def database(backend: str, label: str, rows: int, users: int) -> tuple[Engine, str]:
    order = order_for(rows)
    name = f"card_{TAG}_{label}_{users}u" + ("" if order == "random" else f"_{order}")
    url = _url(backend, name, fresh=False)
    engine = make_engine(url)
    if _count(engine) == rows:
        upgrade_database(engine)  # built by an earlier revision: its migrations apply
        settle(engine)
        return engine, url
    engine.dispose()
    engine = fresh_database(backend, name)
    print(f"  building {label} calls, {users:,} users, {order} order ({backend}) ...", flush=True)
    started = time.perf_counter()
    batch: list[Call] = []
    for call in (random_calls if order == "random" else arrival_calls)(rows, users):
        batch.append(call)
        if len(batch) == BATCH:
            record_batch(engine, batch)
            batch = []
    if batch:
        record_batch(engine, batch)
    rate = rows / (time.perf_counter() - started)
    figure(f"record_batch build, {order} order, {label}, {users:,} users, {backend}", rate, "calls/s")
    settle(engine)
    return engine, url


def settle(engine: Engine) -> None:
    """PostgreSQL: VACUUM ANALYZE, as autovacuum does within minutes of a load (statistics for the
    planner, the visibility map for index-only scans); queries are measured in that steady state."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def rollup_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if "rollups" in n]
        return sum(int(conn.execute(text(f"SELECT count(*) FROM {n}")).scalar_one()) for n in names)  # noqa: S608


def overview(engine: Engine, tz: ZoneInfo) -> None:
    """What the Overview asks for: KPIs, spend per day by provider, by model, top users."""
    last = (END - timedelta(seconds=1)).astimezone(tz).date()
    start = datetime.combine(last - timedelta(days=DAYS - 1), datetime.min.time(), tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    reports.totals(engine, start, end)
    reports.over_time(engine, start, end, tz, "day", by="provider")
    reports.breakdown(engine, start, end, "model")
    try:
        reports.breakdown(engine, start, end, "user", limit=10)  # type: ignore[call-arg]
    except TypeError:  # main's API before top-N: every user
        reports.breakdown(engine, start, end, "user")[:10]


def cpu_ms(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median process CPU time of ``repeat`` runs, ms: SQLite works in-process, so this is its work
    without the waits of a machine shared with other jobs (PostgreSQL's server time is not in it)."""
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        runs.append(time.process_time() - started)
    return sorted(runs)[len(runs) // 2] * 1000


def report_by_user(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["report", "--by", "user", "--since", "2026-10-02", "--until", "2026-10-31"]) == 0


def bench_queries(backend: str) -> Engine | None:
    first: dict[str, float] = {}
    largest = None
    for label, rows in sizes():
        for users in user_counts():
            engine, url = database(backend, label, rows, users)
            per_call = rollup_rows(engine) / rows
            figure(f"roll-up rows per call, {label}, {users:,} users, {backend}", per_call, "rows")
            for zone_name in ZONES:
                tz = ZoneInfo(zone_name)
                overview(engine, tz)
                ms = timed(lambda tz=tz, engine=engine: overview(engine, tz)) * 1000
                key = f"{users} {zone_name}"
                first.setdefault(key, ms)
                figure(
                    f"Overview, 30 days, {zone_name}, {label}, {users:,} users, {backend}",
                    ms,
                    "ms",
                    "10k calls",
                    ms / first[key],
                )
                if backend == "sqlite":
                    cpu = cpu_ms(lambda tz=tz, engine=engine: overview(engine, tz))
                    first.setdefault(key + " cpu", cpu)
                    figure(
                        f"  same, process CPU time, {zone_name}, {label}, {users:,} users",
                        cpu,
                        "ms",
                        "10k calls",
                        cpu / first[key + " cpu"],
                    )
            report_by_user(url)
            ms = timed(lambda url=url: report_by_user(url)) * 1000
            first.setdefault(f"{users} report", ms)
            figure(
                f"report --by user (in-process), {label}, {users:,} users, {backend}",
                ms,
                "ms",
                "10k calls",
                ms / first[f"{users} report"],
            )
            if users == 10_000:
                largest = (label, url)
            engine.dispose()
    return largest  # type: ignore[return-value]


def write_jsonl(path: os.PathLike, rows: int, in_time_order: bool = False) -> None:
    calls = list(enumerate(random_calls(rows, 10_000, seed=29)))
    if in_time_order:
        calls.sort(key=lambda item: item[1].timestamp)
    with open(path, "w") as handle:
        for i, call in calls:
            row = {
                "timestamp": call.timestamp.isoformat(),
                "provider": call.provider,
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "user": call.user,
                "project": call.project,
                "request_id": f"card-{i}",
            }
            handle.write(json.dumps(row) + "\n")


def bench_import(backend: str, label: str, url: str) -> None:
    """Import into a copy of the largest 10,000-user database (the copy is thrown away): the file
    in random time order (the goal's case), then the same rows sorted by time."""
    for order in ("random", "time"):
        path = OUT / f"cardinality_{order}.jsonl"
        write_jsonl(path, IMPORT_ROWS, in_time_order=order == "time")
        _import_into_copy(backend, label, url, path, order)


def _import_into_copy(backend: str, label: str, url: str, path: os.PathLike, order: str) -> None:
    from core.recording.importer import import_file

    name = f"card_{TAG}_import"
    if backend == "sqlite":
        source = url.removeprefix("sqlite:///")
        target = _url(backend, name, fresh=True)
        shutil.copyfile(source, target.removeprefix("sqlite:///"))
    else:
        target = _url(backend, name, fresh=True)
        schema = url.split("search_path%3D", 1)[1]
        engine = make_engine(target)
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names(schema=schema):
                conn.execute(text(f'CREATE TABLE "bench_{name}"."{table}" (LIKE "{schema}"."{table}" INCLUDING ALL)'))
                conn.execute(text(f'INSERT INTO "bench_{name}"."{table}" SELECT * FROM "{schema}"."{table}"'))  # noqa: S608
            sequence = f"pg_get_serial_sequence('\"{schema}\".api_usage_logs', 'id')"
            highest = f'SELECT max(id) FROM "bench_{name}".api_usage_logs'  # noqa: S608
            conn.execute(text(f"SELECT setval({sequence}, ({highest}))"))
        engine.dispose()
    engine = make_engine(target)
    create_tables(engine)
    settle(engine)
    started = time.perf_counter()
    result = import_file(engine, path)
    rate = result.taken / (time.perf_counter() - started)
    figure(
        f"import JSON Lines, {IMPORT_ROWS:,} calls, 10,000 users, {order} order, into {label}, {backend}",
        rate,
        "calls/s",
    )
    engine.dispose()


def bench_raw(backend: str) -> None:
    """record_batch (random order, 10,000 users) vs raw executemany of the same stored rows."""
    engine = fresh_database(backend, f"card_{TAG}_raw")
    calls = list(random_calls(RAW_ROWS, 10_000, seed=5))
    started = time.perf_counter()
    for start in range(0, len(calls), BATCH):
        record_batch(engine, calls[start : start + BATCH])
    rate = len(calls) / (time.perf_counter() - started)
    if backend == "sqlite":
        raw, _n = raw_executemany_rate(engine.url.render_as_string(hide_password=False), BATCH)
    else:
        raw = _pg_raw_rate(engine)
    figure(
        f"record_batch, {RAW_ROWS:,} calls, 10,000 users, random order, {backend}",
        rate,
        "calls/s",
        "raw executemany",
        rate / raw,
    )
    figure(f"raw executemany of the same rows, {backend}", raw, "calls/s")
    engine.dispose()


def _pg_raw_rate(source: Engine) -> float:
    """psycopg executemany of the stored rows into a fresh copy of the schema."""
    columns = [c.name for c in UsageRecord.__table__.columns if c.name != "id"]
    with source.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM api_usage_logs ORDER BY id")]  # noqa: S608
    target = fresh_database("postgresql", f"card_{TAG}_rawtarget")
    statement = f"INSERT INTO api_usage_logs ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
    raw = target.raw_connection()
    started = time.perf_counter()
    try:
        for start in range(0, len(rows), BATCH):
            with raw.cursor() as cursor:
                cursor.executemany(statement, rows[start : start + BATCH])
            raw.commit()
    finally:
        raw.close()
    target.dispose()
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    for backend in backends():
        largest = bench_queries(backend)
        if largest is not None and os.environ.get("BENCH_SKIP_INGEST") != "1":
            bench_import(backend, *largest)
            bench_raw(backend)


if __name__ == "__main__":
    main()
