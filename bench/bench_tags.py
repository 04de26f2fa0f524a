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

    BENCH_TAG_SIZES=10000,1000000 /work/main/.venv/bin/python bench/bench_tags.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from common import OUT, backends, figure, fresh_database, pg_schema_url, timed
from sqlalchemy import Engine, func, select, text

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
TOP = 50
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
PICKED = "feature:7"  # the tag the Overview filters on


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
    upgrade_database(engine)  # an earlier release's database upgraded as a user's is
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
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


def overview_with_tag(engine: Engine, start: datetime, end: datetime, tz: ZoneInfo) -> None:
    """What the Overview reads with one tag picked (uncached): the same core calls as app_pages/overview.py."""
    tags = (PICKED,)
    reports.totals(engine, start, end, tags=tags)
    reports.totals(engine, *previous_period(start, end), tags=tags)
    reports.over_time(engine, start, end, tz, "day", "provider", tags=tags)
    reports.breakdown(engine, start, end, "provider", tags=tags)
    for by in ("model", "user", "project", "tag"):
        reports.breakdown(engine, start, end, by, limit=TOP, tags=tags)


def main() -> None:
    sizes = _sizes()
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
                measures[f"Overview, tag filter, {zone_name}"] = lambda a=first, b=last, z=tz, e=engine: (
                    overview_with_tag(e, a, b, z)
                )
            for name, run in measures.items():
                run()  # warm the caches as a running server has them
                runs = [timed(run, repeat=1) * 1000 for _ in range(REPEAT)]
                # the median, and the best run (on a shared machine, the one least disturbed by others)
                for how, value in (("median", statistics.median(runs)), ("best", min(runs))):
                    key = f"{backend} {name}, {how} of {REPEAT}"
                    base = baseline.setdefault(key, value)
                    figure(
                        f"{key} ({rows:,} calls)",
                        value,
                        "ms",
                        baseline=f"vs {sizes[0]:,} calls",
                        ratio=value / base if rows != sizes[0] else None,
                    )
            engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
