"""Ingestion over HTTP on loopback: ``POST /api/v1/calls`` in batches of 500 from 4 concurrent senders.

Per backend (SQLite; PostgreSQL when TEST_DATABASE_URL is set) and per server: ``python -m core serve``
(1 worker, and 2 on PostgreSQL) and the dashboard process (``streamlit run server.py``), each on a fresh
database. Figures: calls/s (acknowledged calls over wall time), p50/p99 request latency, peak server RSS
(the server process and its workers). Bodies are encoded before the clock starts; senders are threads
with keep-alive connections, so the client shares the machine's cores with the server.

    /work/main/.venv/bin/python bench/bench_http.py            # BENCH_HTTP_BATCHES=20 per sender
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import OUT, PG_URL, ROOT, backends, figure, fresh_database, machine

from core.ingest.keys import create_key

SENDERS = 4
BATCH = 500
BATCHES = int(os.environ.get("BENCH_HTTP_BATCHES", "20"))  # per sender, timed (after one warm-up batch)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo.extend(_children(current))
    return total / 1024


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, path: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _start(kind: str, url: str, workers: int, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), "SPENDBOARD_ADMIN_PASSWORD": "bench-" + "x" * 12}
    if kind == "serve":
        command = [sys.executable, "-m", "core", "serve", "--port", str(port), "--workers", str(workers)]
        health = "/api/v1/health"
    else:
        command = [sys.executable, "-m", "streamlit", "run", "server.py", "--server.port", str(port)]
        command += [
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ]
        health = "/_stcore/health"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait(port, health, process, log)
    return process


def _bodies(sender: int, count: int, start: datetime) -> list[bytes]:
    bodies = []
    for b in range(count):
        calls = []
        for i in range(BATCH):
            n = (sender * 1_000 + b) * BATCH + i
            calls.append(
                {
                    "timestamp": (start + timedelta(seconds=n % 80_000)).isoformat(),
                    "provider": "openai",
                    "model": "gpt-4o-mini" if n % 3 else "gpt-4o",
                    "input_tokens": 1000 + n % 700,
                    "output_tokens": 200 + n % 300,
                    "cached_input_tokens": n % 500,
                    "user": f"user-{n % 50}",
                    "project": f"app-{n % 4}",
                    "request_id": f"bench-{sender}-{b}-{i}",
                }
            )
        bodies.append(json.dumps(calls).encode())
    return bodies


def _send(port: int, key: str, bodies: list[bytes], latencies: list[float], accepted: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        started = time.perf_counter()
        conn.request("POST", "/api/v1/calls", body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        latencies.append(time.perf_counter() - started)
        if answer.status != 200:
            raise SystemExit(f"HTTP {answer.status}: {data[:300]!r}")
        accepted.append(json.loads(data)["accepted"])
    conn.close()


def run(backend: str, kind: str, workers: int) -> None:
    name = f"http_{backend}_{kind}_{workers}"
    engine = fresh_database(backend, name)
    url = str(engine.url.render_as_string(hide_password=False))
    key = create_key(engine, "bench").key
    engine.dispose()
    port = _free_port()
    OUT.mkdir(parents=True, exist_ok=True)
    process = _start(kind, url, workers, port, OUT / f"{name}.log")
    try:
        start = datetime.now(UTC) - timedelta(days=1)
        bodies = [_bodies(s, BATCHES + 1, start) for s in range(SENDERS)]
        warm: list[float] = []
        threads = [threading.Thread(target=_send, args=(port, key, b[:1], warm, [])) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies: list[float] = []
        accepted: list[int] = []
        peak = [_rss_mb(process.pid)]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak.append(_rss_mb(process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=_send, args=(port, key, b[1:], latencies, accepted)) for b in bodies]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        done.set()
        sampler.join()
        calls = sum(accepted)
        assert calls == SENDERS * BATCHES * BATCH, calls
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        label = f"HTTP {backend} {kind}" + (f" x{workers}" if kind == "serve" else " (dashboard)")
        figure(f"{label}: calls/s", calls / elapsed, "calls/s", backend=backend, server=kind, workers=workers)
        figure(f"{label}: p50 request", statistics.median(latencies) * 1000, "ms", backend=backend, server=kind)
        figure(f"{label}: p99 request", p99 * 1000, "ms", backend=backend, server=kind, workers=workers)
        figure(f"{label}: peak server RSS", max(peak), "MB", backend=backend, server=kind, workers=workers)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    print(f"machine: {machine()}; {SENDERS} senders x {BATCHES} batches of {BATCH} calls", flush=True)
    for backend in backends():
        plans = [("serve", 1)] + ([("serve", 2)] if backend == "postgresql" else []) + [("dashboard", 1)]
        for kind, workers in plans:
            run(backend, kind, workers)
    if not PG_URL:
        print("(PostgreSQL skipped: set TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
