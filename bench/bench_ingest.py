"""Ingestion: record_batch in-process vs raw sqlite3 executemany of the same rows, and import of JSON Lines.

Goals (issue 4): record_batch >= 0.3x raw executemany; import >= 100k calls/s, never below 30k/s.
Rows: BENCH_INGEST_ROWS (default 200,000), demo calls in time order, 20,000 per transaction.
"""

from __future__ import annotations

import json
import os
import time

from common import OUT, backends, figure, fresh_database, raw_executemany_rate

from core.recording.calls import record_batch
from core.recording.demo import generate
from core.recording.importer import import_file

ROWS = int(os.environ.get("BENCH_INGEST_ROWS", "200000"))
BATCH = 20_000


def bench_record_batch(backend: str) -> None:
    calls = list(generate(90, ROWS))
    engine = fresh_database(backend, "ingest_record_batch")
    started = time.perf_counter()
    for start in range(0, len(calls), BATCH):
        record_batch(engine, calls[start : start + BATCH])
    rate = len(calls) / (time.perf_counter() - started)
    if backend == "sqlite":
        raw, _n = raw_executemany_rate(engine.url.render_as_string(hide_password=False), BATCH)
        figure(f"record_batch, {ROWS:,} calls, sqlite", rate, "calls/s", "raw sqlite3.executemany", rate / raw)
        figure(f"raw sqlite3.executemany, same {ROWS:,} rows", raw, "calls/s")
    else:
        figure(f"record_batch, {ROWS:,} calls, {backend}", rate, "calls/s")
    engine.dispose()


def write_jsonl(path: os.PathLike) -> int:
    with open(path, "w") as handle:
        for i, call in enumerate(generate(90, ROWS, seed=11)):
            row = {
                "timestamp": call.timestamp.isoformat(),
                "provider": call.provider,
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cached_input_tokens": call.cached_input_tokens,
                "user": call.user,
                "request_id": f"bench-{i}",
            }
            handle.write(json.dumps(row) + "\n")
    return ROWS


def bench_import(backend: str) -> None:
    path = OUT / "calls.jsonl"
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(path)
    # baseline: only reading and parsing the same file
    started = time.perf_counter()
    with open(path, "rb") as handle:
        parsed = sum(1 for line in handle if json.loads(line))
    parse_rate = parsed / (time.perf_counter() - started)
    engine = fresh_database(backend, "ingest_import")
    started = time.perf_counter()
    result = import_file(engine, path)
    rate = result.taken / (time.perf_counter() - started)
    assert result.taken == ROWS, result
    figure(
        f"import JSON Lines, {ROWS:,} calls, {backend}", rate, "calls/s", "json.loads of the file", rate / parse_rate
    )
    figure(f"import vs goal of 100k calls/s, {backend}", rate / 100_000, "x goal")
    engine.dispose()


def main() -> None:
    for backend in backends():
        bench_record_batch(backend)
        bench_import(backend)


if __name__ == "__main__":
    main()
