"""Recording with 20 active budgets against none: record_batch and import rates side by side.

Goal (issue 13): with 20 budgets, >= 0.8x the rate without. Calls: BENCH_BUDGET_ROWS demo
calls (default 100,000) over the last BENCH_BUDGET_DAYS (default 30) days, in time order; record_batch in batches of
BENCH_BUDGET_BATCHES (default 5,000 and 100), import of the same calls as JSON Lines. The 20 budgets
(made 60 days ago, so every period of the calls is watched) mix periods, zones and scopes:
all, provider, model and user, with thresholds that some periods cross.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import OUT, backends, figure, fresh_database, machine
from sqlalchemy import func, select

from core.budgets import detect, service
from core.budgets.detect import forget_budgets
from core.recording.calls import record_batch
from core.recording.demo import generate
from core.recording.importer import import_file
from core.storage.budget_tables import BudgetEvent

ROWS = int(os.environ.get("BENCH_BUDGET_ROWS", "100000"))
DAYS = int(os.environ.get("BENCH_BUDGET_DAYS", "30"))  # 1: live traffic, one period per budget per pass
BATCHES = [int(b) for b in os.environ.get("BENCH_BUDGET_BATCHES", "5000,100").split(",")]
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York")
PERIODS = ("day", "week", "month")


def budgets(calls: list) -> list[service.BudgetSpec]:  # type: ignore[type-arg]
    providers = sorted({c.provider for c in calls})
    models = sorted({c.model for c in calls})
    users = sorted({c.user for c in calls if c.user})
    specs = []
    for i in range(20):
        kind = ("all", "provider", "model", "user")[i % 4]
        value = {"all": None, "provider": providers, "model": models, "user": users}[kind]
        scope = "all" if value is None else f"{kind}:{value[i % len(value)]}"
        amount = ("5", "50", "500", "5000")[i % 4]
        specs.append(service.validate(f"budget-{i}", amount, PERIODS[i % 3], scope, ZONES[i % 4], "50,80,100", None))
    return specs


def _setup(backend: str, name: str, with_budgets: bool, calls: list):  # type: ignore[no-untyped-def,type-arg]
    engine = fresh_database(backend, name)
    forget_budgets()
    if with_budgets:
        created = datetime.now(UTC) - timedelta(days=60)
        for spec in budgets(calls):
            service.add_budget(engine, spec, now=created)
    return engine


def _events(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(BudgetEvent)).scalar_one()


REPEAT = int(os.environ.get("BENCH_BUDGET_REPEAT", "3"))


DETECTION: list[float] = []  # seconds each detection pass took


def _timed_detection():  # type: ignore[no-untyped-def]
    """Wrap the detection pass so its own time is measured inside the same run (robust to a noisy machine)."""
    original = detect._run_pass

    def wrapper(state):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(state)
        finally:
            DETECTION.append(time.perf_counter() - started)

    return original, wrapper


def _record(backend: str, with_budgets: bool, calls: list, batch: int) -> tuple[float, int]:  # type: ignore[type-arg]
    engine = _setup(backend, f"budgets_record_{int(with_budgets)}", with_budgets, calls)
    original, wrapper = _timed_detection()
    detect._run_pass = wrapper
    DETECTION.clear()
    try:
        started = time.perf_counter()
        for start in range(0, len(calls), batch):
            record_batch(engine, calls[start : start + batch])
        detect.flush(engine)  # what is still pending is part of the cost
        elapsed = time.perf_counter() - started
    finally:
        detect._run_pass = original
    rate = len(calls) / elapsed
    if with_budgets:
        figure(
            f"  detection passes, batches of {batch:,}, 20 budgets, {backend}",
            1000 * sum(DETECTION) / max(len(DETECTION), 1),
            "ms/pass",
            f"of the run's time ({len(DETECTION)} passes for {len(calls) // batch} batches)",
            sum(DETECTION) / elapsed,
        )
    events = _events(engine)
    engine.dispose()
    return rate, events


def _import(backend: str, with_budgets: bool, calls: list, path: Path) -> tuple[float, int]:  # type: ignore[type-arg]
    engine = _setup(backend, f"budgets_import_{int(with_budgets)}", with_budgets, calls)
    started = time.perf_counter()
    result = import_file(engine, path)
    rate = result.taken / (time.perf_counter() - started)
    events = _events(engine)
    engine.dispose()
    return rate, events


def side_by_side(label: str, backend: str, run) -> None:  # type: ignore[no-untyped-def]
    """Best of REPEAT runs each, alternating without and with budgets (the machine is shared and noisy)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    events = 0
    for _ in range(REPEAT):
        for with_budgets in (False, True):
            rate, found = run(with_budgets)
            rates[with_budgets].append(rate)
            events = found if with_budgets else events
    best = {k: max(v) for k, v in rates.items()}
    figure(f"{label}, {ROWS:,} calls, no budgets, {backend}", best[False], "calls/s")
    figure(
        f"{label}, {ROWS:,} calls, 20 budgets, {backend}",
        best[True],
        "calls/s",
        "no budgets",
        best[True] / best[False],
        events=events,
        runs={str(k): [round(r) for r in v] for k, v in rates.items()},
    )


def write_jsonl(path: Path, calls: list) -> None:  # type: ignore[type-arg]
    with open(path, "w") as handle:
        for i, c in enumerate(calls):
            row = {
                "timestamp": c.timestamp.isoformat(),
                "provider": c.provider,
                "model": c.model,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "cached_input_tokens": c.cached_input_tokens,
                "user": c.user,
                "request_id": f"bench-{i}",
            }
            handle.write(json.dumps(row) + "\n")


def main() -> None:
    print(f"# budgets: {machine()}")
    calls = list(generate(DAYS, ROWS, end=datetime.now(UTC) - timedelta(minutes=5)))
    print(f"# {ROWS:,} calls over the last {DAYS} days")
    path = OUT / "budget_calls.jsonl"
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, calls)
    for backend in backends():
        for batch in BATCHES:
            side_by_side(f"record_batch in batches of {batch:,}", backend, lambda b: _record(backend, b, calls, batch))  # noqa: B023
        side_by_side("import", backend, lambda b: _import(backend, b, calls, path))  # noqa: B023


if __name__ == "__main__":
    main()
