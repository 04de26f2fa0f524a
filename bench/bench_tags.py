"""Tags at scale (issue 23): ``report --by tag`` and the Overview with a tag filter, flat in calls and tags.

For each backend (BENCH_BACKENDS) and size (BENCH_TAG_SIZES, calls, default ``10000,1000000``), a
database of calls over 30 days, 200 users, 8 models, each call carrying BENCH_TAGS_PER_CALL
(default 3) distinct tags drawn uniformly from BENCH_TAGS (default 1,000) is built once through
``record_batch`` (20,000 a transaction, in time order) and reused. Printed: the build rate, the
tag roll-up rows, then (median and best of BENCH_REPEAT, default 7, in-process, no cache)
``report --by tag`` over the 30 days in UTC and in Asia/Kolkata (+5:30: raw edges at both
ends), ``report --tag T --by day``, and the Overview's queries with one tag picked (KPIs now
and before, the chart stacked by provider, the provider, model, user, project and tag tables),
each against the smallest size.

The Overview is timed query by query: its FIRST VIEW with one tag picked (KPIs now, KPIs of the
previous period, the chart by provider per day, the provider table) per query and summed, and
apart the tables a user opens later (models, users, projects, tags, 51 rows each).
BENCH_TAG_ONLY=Overview runs only that part; BENCH_TAG_ONLY=Ingest only the ingest cost of the
tag roll-up (tagged calls recorded with and without it, alternating, into fresh databases).
A database built by an earlier release is upgraded as a user's is, and the upgrade is timed.

    BENCH_TAG_SIZES=10000,1000000 /work/main/.venv/bin/python bench/bench_tags.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from common import OUT, backends, figure, fresh_database, pg_schema_url
from sqlalchemy import Engine, func, inspect, select, text

from core.recording.calls import Call, record_batch
from core.reporting import aggregates as reports
from core.reporting.forecast import previous_period
from core.reporting.report import spend_report
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database
from core.storage.tables import EntityRollup, UsageRecord

DAYS = 30
USERS = 200
TAGS = int(os.environ.get("BENCH_TAGS", "1000"))
PER_CALL = int(os.environ.get("BENCH_TAGS_PER_CALL", "3"))
BATCH = 20_000
END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=DAYS)
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
    ("mistral", "mistral-large-latest"),
    ("groq", "llama-3.3-70b-versatile"),
    ("deepseek", "deepseek-chat"),
]
TOP = 51  # the Overview's tables: 50 rows and one more to tell whether there are more
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
PICKED = "feature:7"  # the tag the Overview filters on
ONLY = os.environ.get("BENCH_TAG_ONLY", "").strip().lower()  # "", "overview" or "ingest"


def _sizes() -> list[int]:
    raw = os.environ.get("BENCH_TAG_SIZES", "10000,1000000")
    try:
        return sorted(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"BENCH_TAG_SIZES: {raw!r} is not a list of call counts (e.g. 10000,1000000)") from None


def _calls(rows: int, seed: int = 23):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    names = [f"feature:{i}" for i in range(TAGS)]
    step = DAYS * 86400 / rows
    for i in range(rows):
        provider, model = MODELS[i % len(MODELS)]
        moment = START + timedelta(seconds=i * step)
        yield Call(
            moment,
            provider,
            model,
            rng.randint(100, 5000),
            rng.randint(10, 800),
            user=f"user-{rng.randrange(USERS)}",
            project=f"project-{rng.randrange(20)}",
            request_id=f"tags-{i}",
            tags=tuple(rng.sample(names, PER_CALL)),
        )


def database(backend: str, rows: int) -> tuple[Engine, float | None]:
    label = f"tags_{rows}_{TAGS}_{PER_CALL}"
    url = f"sqlite:///{OUT / f'{label}.db'}" if backend == "sqlite" else pg_schema_url(f"bench_{label}", fresh=False)
    engine = make_engine(url)
    started = time.perf_counter()
    done = upgrade_database(engine)  # an earlier release's database upgraded as a user's is
    upgraded = time.perf_counter() - started
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    if have and done:
        figure(f"{backend} {have:,} calls: upgrade ({'; '.join(done)})", upgraded, "s")
    if have == rows:
        return engine, None
    engine.dispose()
    engine = fresh_database(backend, label)
    print(f"  building {rows:,} calls with {TAGS:,} tags, {PER_CALL} a call ({backend}) ...", flush=True)
    started = time.perf_counter()
    batch: list[Call] = []
    for call in _calls(rows):
        batch.append(call)
        if len(batch) == BATCH:
            record_batch(engine, batch)
            batch = []
    if batch:
        record_batch(engine, batch)
    elapsed = time.perf_counter() - started
    if backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return engine, elapsed


def first_view(engine: Engine, start: datetime, end: datetime, tz: ZoneInfo) -> dict[str, Callable[[], object]]:
    """What the Overview reads first with one tag picked (uncached): the same core calls as app_pages/overview.py."""
    tags = (PICKED,)
    return {
        "totals now": lambda: reports.totals(engine, start, end, tags=tags),
        "totals before": lambda: reports.totals(engine, *previous_period(start, end), tags=tags),
        "chart by provider": lambda: reports.over_time(engine, start, end, tz, "day", "provider", tags=tags),
        "provider table": lambda: reports.breakdown(engine, start, end, "provider", tags=tags),
    }


def later_tables(engine: Engine, start: datetime, end: datetime) -> dict[str, Callable[[], object]]:
    """The Overview's tables a user opens later, one tag picked."""
    tags = (PICKED,)
    return {
        f"{by} table ({TOP})": lambda by=by: reports.breakdown(engine, start, end, by, limit=TOP, tags=tags)
        for by in ("model", "user", "project", "tag")
    }


def _times(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def _report(backend: str, name: str, runs: list[float], rows: int, sizes: list[int], baseline: dict) -> None:
    """Median and best of ``runs`` (ms), with the ratio to the smallest size."""
    # the median, and the best run (on a shared machine, the one least disturbed by others)
    for how, value in (("median", statistics.median(runs)), ("best", min(runs))):
        key = f"{backend} {name}, {how} of {len(runs)}"
        base = baseline.setdefault(key, value)
        figure(
            f"{key} ({rows:,} calls)",
            value,
            "ms",
            baseline=f"vs {sizes[0]:,} calls",
            ratio=value / base if rows != sizes[0] else None,
        )


def overview(engine: Engine, backend: str, rows: int, sizes: list[int], baseline: dict) -> None:
    """The Overview with one tag picked: the first view per query and summed (per run), then the later tables."""
    for zone_name in ("UTC", "Asia/Kolkata"):
        tz = ZoneInfo(zone_name)
        start, end = datetime(2026, 10, 2, tzinfo=tz), datetime(2026, 11, 1, tzinfo=tz)
        queries = first_view(engine, start, end, tz)
        for run in queries.values():
            run()  # warm the caches as a running server has them
        per_query: dict[str, list[float]] = {name: [] for name in queries}
        sums: list[float] = []
        for _ in range(REPEAT):
            took = {name: _times(run) for name, run in queries.items()}
            for name, value in took.items():
                per_query[name].append(value)
            sums.append(sum(took.values()))
        for name, runs in per_query.items():
            _report(backend, f"Overview {zone_name}: {name}", runs, rows, sizes, baseline)
        _report(backend, f"Overview {zone_name}: FIRST VIEW (sum)", sums, rows, sizes, baseline)
        for name, run in later_tables(engine, start, end).items():
            run()
            runs = [_times(run) for _ in range(REPEAT)]
            _report(backend, f"Overview {zone_name}: {name}", runs, rows, sizes, baseline)


INGEST_CALLS = int(os.environ.get("BENCH_INGEST_CALLS", "100000"))
INGEST_PAIRS = int(os.environ.get("BENCH_INGEST_PAIRS", "5"))


def ingest(backend: str) -> None:
    """Recording speed of tagged calls with and without the tag roll-ups by provider and model and the tags'
    six-hour rows (the tag storage of migration 0016: per day and 7-day block only): alternating runs into fresh
    databases (BENCH_INGEST_PAIRS pairs of BENCH_INGEST_CALLS calls, 20,000 a batch), medians and paired ratio."""
    from core.recording import rollups

    keep = getattr(rollups, "add_stored_tag_rollups", None)
    tag_grains = getattr(rollups, "TAG_GRAINS", rollups.ENTITY_GRAINS)
    calls = list(_calls(INGEST_CALLS, seed=5))
    rates: dict[str, list[float]] = {"with": [], "without": []}
    for _pair in range(INGEST_PAIRS):
        for how in ("with", "without") if keep is not None else ("with",):
            if how == "without":  # the tag storage of 0016: per tag and day (and 7-day block) only
                rollups.add_stored_tag_rollups = lambda conn, chosen: None  # type: ignore[attr-defined]
                rollups.TAG_GRAINS = rollups.ENTITY_GRAINS  # type: ignore[misc]
            try:
                engine = fresh_database(backend, "tags_ingest")
                started = time.perf_counter()
                for first in range(0, len(calls), BATCH):
                    record_batch(engine, calls[first : first + BATCH])
                rates[how].append(len(calls) / (time.perf_counter() - started))
                engine.dispose()
            finally:
                if keep is not None:
                    rollups.add_stored_tag_rollups = keep  # type: ignore[attr-defined]
                rollups.TAG_GRAINS = tag_grains  # type: ignore[misc]
    for how, runs in rates.items():
        if runs:
            figure(
                f"{backend} record {INGEST_CALLS:,} tagged calls, {how} tag roll-ups, median",
                statistics.median(runs),
                "calls/s",
            )
    if rates["without"]:
        paired = [a / b for a, b in zip(rates["with"], rates["without"], strict=True)]
        figure(
            f"{backend} recording with / without tag roll-ups, median of {len(paired)} pairs",
            statistics.median(paired),
            "x",
        )


def main() -> None:
    sizes = _sizes()
    if ONLY == "ingest":
        for backend in backends():
            ingest(backend)
        return
    for backend in backends():
        print(f"\n{backend}: {TAGS:,} tags, {PER_CALL} a call, {DAYS} days, {USERS} users", flush=True)
        baseline: dict[str, float] = {}
        for rows in sizes:
            engine, built = database(backend, rows)
            if built is not None:
                figure(f"{backend} build {rows:,} tagged calls", rows / built, "calls/s", seconds=built)
            with engine.connect() as conn:
                tag_rows = conn.execute(
                    select(func.count()).select_from(EntityRollup).where(EntityRollup.dimension == "tag")
                ).scalar_one()
            figure(f"{backend} {rows:,}: tag roll-up rows", tag_rows, "rows")
            if "usage_tag_rollups" in inspect(engine).get_table_names():
                with engine.connect() as conn:
                    by_model = conn.execute(text("SELECT count(*) FROM usage_tag_rollups")).scalar_one()
                figure(f"{backend} {rows:,}: tag roll-up rows by provider and model", by_model, "rows")
            if backend == "sqlite":
                size = (OUT / f"tags_{rows}_{TAGS}_{PER_CALL}.db").stat().st_size
                figure(f"{backend} {rows:,}: database file", size / 2**20, "MiB")
            if ONLY != "overview":
                measures = {}
                for zone_name in ("UTC", "Asia/Kolkata"):
                    tz = ZoneInfo(zone_name)
                    first = datetime(2026, 10, 2, tzinfo=tz)
                    last = datetime(2026, 11, 1, tzinfo=tz)
                    measures[f"report --by tag, 30 days {zone_name}"] = lambda a=first, b=last, z=tz, e=engine: (
                        spend_report(e, a, b, z, "tag")
                    )
                    measures[f"report --tag T --by day, {zone_name}"] = lambda a=first, b=last, z=tz, e=engine: (
                        spend_report(e, a, b, z, "day", tags=[PICKED])
                    )
                for name, run in measures.items():
                    run()  # warm the caches as a running server has them
                    _report(backend, name, [_times(run) for _ in range(REPEAT)], rows, sizes, baseline)
            overview(engine, backend, rows, sizes, baseline)
            engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
