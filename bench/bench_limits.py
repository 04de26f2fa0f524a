"""Enforced budgets on the hot path (issue 21): check latency in process and over HTTP, and recording's rate.

A database of BENCH_LIMIT_CALLS calls (default 1,000,000) from BENCH_LIMIT_USERS users (default 10,000)
and 40 projects over this month so far, with BENCH_LIMIT_BUDGETS enforced budgets (default 50: 3
``each:user`` (a day, a week, a month), 2 ``each:project``, and ``all``, ``provider:``, ``model:``,
``user:`` and ``project:`` ones, periods mixed), built once per backend and reused
(BENCH_LIMIT_REBUILD=1 builds again).

Figures (goal: check p99 <= 5 ms in process, <= 20 ms over HTTP; recording >= 0.9x without):
- ``check`` in process, p50 / p99 over BENCH_LIMIT_CHECKS checks (default 2,000) of random users and
  projects, without and with ``reserve`` (a fresh request id each); the counters are warm (each
  subject checked once before the clock: the first check of a subject in a period sums it from the
  roll-ups once, reported apart as "cold");
- ``POST /api/v1/check`` on loopback against ``python -m core serve`` (1 worker), one keep-alive client;
- ``record_batch`` of BENCH_LIMIT_RECORD calls (default 20,000) now, in batches of 500 and 5,000,
  with the budgets enforced against the same budgets not enforced (best of 3, alternating); budget
  detection (alerts, the same either way) is left out of both.

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        /work/main/.venv/bin/python bench/bench_limits.py
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import OUT, PG_URL, ROOT, backends, figure, fresh_sqlite, machine, pg_schema_url
from sqlalchemy import Engine, func, select, update

import core.limits  # noqa: F401 - the counters kept on recording, as every entrypoint does
from core.budgets import detect
from core.budgets import service as budgets
from core.ingest.keys import create_key
from core.limits import service
from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import Call, make_call, record_batch
from core.storage.budget_tables import Budget
from core.storage.checkpoint import start_checkpointer
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database
from core.storage.tables import UsageRecord

CALLS = int(os.environ.get("BENCH_LIMIT_CALLS", "1000000"))
USERS = int(os.environ.get("BENCH_LIMIT_USERS", "10000"))
BUDGETS = int(os.environ.get("BENCH_LIMIT_BUDGETS", "50"))
CHECKS = int(os.environ.get("BENCH_LIMIT_CHECKS", "2000"))
RECORD = int(os.environ.get("BENCH_LIMIT_RECORD", "20000"))
REBUILD = os.environ.get("BENCH_LIMIT_REBUILD") == "1"
# BENCH_LIMIT_PARTS=check,http,record,leftovers picks what to measure
PROJECTS = 40
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("groq", "llama-3")]


def _calls(count: int, start: datetime, end: datetime, seed: int) -> list[Call]:
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    moments = sorted(start + timedelta(seconds=rng.random() * span) for _ in range(count))
    out = []
    for moment in moments:
        provider, model = rng.choice(MODELS)
        user = (
            f"u-{int(rng.paretovariate(1.2) * 7) % USERS:05d}"
            if rng.random() < 0.5
            else f"u-{rng.randrange(USERS):05d}"
        )
        out.append(
            make_call(
                provider,
                model,
                rng.randrange(50, 4000),
                rng.randrange(10, 800),
                user=user,
                project=f"p-{rng.randrange(PROJECTS):02d}",
                timestamp=moment,
            )
        )
    return out


def _budget_specs() -> list[budgets.BudgetSpec]:
    specs = []
    for i in range(BUDGETS):
        if i < 3:  # a user's daily, weekly and monthly allowance
            scope, amount = "each:user", "50"
        elif i < 5:
            scope, amount = "each:project", "100000"
        else:
            kind = ("all", "provider", "model", "user", "project")[i % 5]
            value = {
                "all": None,
                "provider": MODELS[i % 4][0],
                "model": MODELS[i % 4][1],
                "user": f"u-{i:05d}",
                "project": f"p-{i % PROJECTS:02d}",
            }[kind]
            scope, amount = ("all" if value is None else f"{kind}:{value}"), "1000000"
        spec = budgets.validate(f"limit-{i}", amount, ("month", "week", "day")[i % 3], scope, "UTC", "80,100")
        specs.append(budgets.BudgetSpec(**{**spec.__dict__, "enforce": True}))
    return specs


def database(backend: str) -> tuple[Engine, str]:
    label = f"limits_{CALLS}_{USERS}_{BUDGETS}"
    if backend == "sqlite":
        path = OUT / f"{label}.db"
        url = f"sqlite:///{path}" if path.exists() and not REBUILD else fresh_sqlite(f"{label}.db")
    else:
        url = pg_schema_url(f"bench_{label}", fresh=REBUILD)
    engine = make_engine(url)
    upgrade_database(engine)
    start_checkpointer(engine)  # as a process that reserves does (the server, track(enforce=True)); SQLite only
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    if have >= CALLS:
        return engine, url
    started = time.perf_counter()
    initialize_default_pricing(engine)
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    chunk = 100_000
    for i in range(0, CALLS, chunk):
        calls = _calls(min(chunk, CALLS - i), month_start, now, seed=i)
        for j in range(0, len(calls), 5000):
            record_batch(engine, calls[j : j + 5000])
    detect.forget_budgets()
    for spec in _budget_specs():
        budgets.add_budget(engine, spec, now=month_start)
    figure(f"build: {CALLS:,} calls, {USERS:,} users, {BUDGETS} budgets, {backend}", time.perf_counter() - started, "s")
    return engine, url


def _latency(measure: str, samples: list[float]) -> None:
    p50, p99 = _percentiles(samples)
    figure(measure, p99 * 1000, "ms p99", p50_ms=round(p50 * 1000, 3), n=len(samples))
    print(f"{'':<58} {p50 * 1000:>12.2f} ms p50", flush=True)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _requests(rng: random.Random, count: int) -> list[dict[str, object]]:
    out = []
    for _ in range(count):
        provider, model = rng.choice(MODELS)
        out.append(
            {
                "user": f"u-{rng.randrange(USERS):05d}",
                "project": f"p-{rng.randrange(PROJECTS):02d}",
                "provider": provider,
                "model": model,
                "estimated_cost": "0.01",
            }
        )
    return out


def leftovers(engine: Engine, backend: str) -> None:
    """What the sweep is for: checks while the holds of 2,000 reserves have expired and nobody reserves again
    (their client stopped), then after the server's loop swept them (``service.sweep_expired_holds``)."""
    asks = _requests(random.Random(2), CHECKS)
    moment = datetime.now(UTC)
    for i, raw in enumerate(asks):
        body = {**raw, "reserve": True, "request_id": f"left-{i}-{time.time_ns()}", "hold_seconds": 60}
        service.decide(engine, service.request_from_mapping(engine, body), now=moment)
    later = moment + timedelta(seconds=61)
    for swept in (False, True):
        if swept:
            started = time.perf_counter()
            counters = service.sweep_expired_holds(engine, now=later)
            figure(
                f"sweep of {CHECKS:,} reserves' expired holds ({counters:,} counters), {backend}",
                (time.perf_counter() - started) * 1000,
                "ms",
            )
        samples = []
        for raw in asks:
            started = time.perf_counter()
            service.decide(engine, service.request_from_mapping(engine, raw), now=later)
            samples.append(time.perf_counter() - started)
        state = "after the sweep" if swept else "expired holds not swept"
        _latency(f"check in process, {state}, {backend}", samples)


def in_process(engine: Engine, backend: str) -> None:
    rng = random.Random(1)
    asks = _requests(rng, CHECKS)
    cold: list[float] = []
    for raw in asks:  # warm every counter these checks read (the first check of a subject sums it once)
        started = time.perf_counter()
        service.decide(engine, service.request_from_mapping(engine, raw))
        cold.append(time.perf_counter() - started)
    _latency(f"check, first of each subject (cold), {backend}", cold)
    applying = len(service.applying(engine, service.request_from_mapping(engine, asks[0]), datetime.now(UTC)))
    for reserve in (False, True):
        samples = []
        for i, raw in enumerate(asks):
            body = {**raw, "reserve": True, "request_id": f"bench-{reserve}-{i}-{time.time_ns()}"} if reserve else raw
            started = time.perf_counter()
            service.decide(engine, service.request_from_mapping(engine, body))
            samples.append(time.perf_counter() - started)
        mode = "reserve" if reserve else "check"
        _latency(f"{mode} in process, {BUDGETS} budgets ({applying} apply), {backend}", samples)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(engine: Engine, url: str, backend: str) -> None:
    key = create_key(engine, f"bench-{time.time_ns()}", scope="check").key
    port = _free_port()
    log = OUT / "bench_limits_server.log"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), "SPENDBOARD_BUDGET_WORKER": "0"}
    command = [sys.executable, "-m", "core", "serve", "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/api/v1/health")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        asks = _requests(random.Random(1), CHECKS)  # the subjects warmed in process
        for reserve in (False, True):
            samples = []
            for i, raw in enumerate(asks):
                body = {**raw, "reserve": True, "request_id": f"http-{i}-{time.time_ns()}"} if reserve else raw
                data = json.dumps(body).encode()
                started = time.perf_counter()
                conn.request("POST", "/api/v1/check", body=data, headers=headers)
                reply = conn.getresponse()
                reply.read()
                samples.append(time.perf_counter() - started)
                assert reply.status == 200, reply.status
            mode = "reserve" if reserve else "check"
            _latency(f"POST /api/v1/check ({mode}), loopback, {backend}", samples)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _enforce(engine: Engine, on: bool) -> None:
    with engine.begin() as conn:
        conn.execute(update(Budget).where(Budget.name.like("limit-%")).values(enforce=on))
    detect.forget_budgets()


def recording(engine: Engine, backend: str) -> None:
    """record_batch with the budgets enforced against the same budgets not enforced.

    Budget detection (alerts, the same either way; see bench_budgets.py) is left out of both: with
    ``each:`` budgets over 10,000 users its passes would otherwise dominate and blur the difference.
    """
    from core.recording import hooks

    detection = [h for h in hooks._after_commit if h is detect.on_recorded]
    for h in detection:
        hooks._after_commit.remove(h)
    try:
        _recording(engine, backend)
    finally:
        hooks._after_commit.extend(detection)


def _recording(engine: Engine, backend: str) -> None:
    rates: dict[tuple[int, bool], list[float]] = {}
    for attempt in range(3):
        for batch in (500, 5000):
            for on in (False, True):
                _enforce(engine, on)
                now = datetime.now(UTC)
                calls = _calls(RECORD, now - timedelta(minutes=5), now, seed=10_000 + attempt * 10 + int(on))
                started = time.perf_counter()
                for j in range(0, len(calls), batch):
                    record_batch(engine, calls[j : j + batch])
                rates.setdefault((batch, on), []).append(len(calls) / (time.perf_counter() - started))
    _enforce(engine, True)
    for batch in (500, 5000):
        off, on = max(rates[(batch, False)]), max(rates[(batch, True)])
        figure(f"record_batch, batches of {batch:,}, budgets not enforced, {backend}", off, "calls/s")
        figure(
            f"record_batch, batches of {batch:,}, {BUDGETS} enforced, {backend}",
            on,
            "calls/s",
            "not enforced",
            on / off,
        )


def main() -> None:
    print(f"# bench_limits: {machine()}", flush=True)
    for backend in backends():
        if backend == "postgresql" and not PG_URL:
            continue
        engine, url = database(backend)
        # the holds earlier runs left (never recorded; a bench database has no real ones): each run starts clean
        service.sweep_expired_holds(engine, now=datetime.now(UTC) + timedelta(seconds=service.MAX_HOLD_SECONDS + 1))
        parts = os.environ.get("BENCH_LIMIT_PARTS", "check,http,record,leftovers").split(",")
        if "check" in parts:
            in_process(engine, backend)
        if "http" in parts:
            over_http(engine, url, backend)
        if "record" in parts:
            recording(engine, backend)
        if "leftovers" in parts:
            leftovers(engine, backend)
        engine.dispose()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
