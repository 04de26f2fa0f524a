"""An import killed with SIGKILL keeps only whole batches; running it again completes it with no duplicate.

A real ``python -m core import`` process is killed at several points, chosen by
polling the row count so at least one batch has been committed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.recording.rollups import check_rollups
from core.storage.tables import UsageRecord

REPO = Path(__file__).resolve().parents[2]
ROWS = 10_000
BATCH = 100
IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000003")  # the HuggingFace defaults the seed applies


def write_calls(path: Path) -> tuple[int, int]:
    """Half the rows carry a request_id, half rely on the id the importer derives; returns token sums."""
    total_in = total_out = 0
    with path.open("w") as out:
        for i in range(ROWS):
            tokens_in, tokens_out = 100 + i % 977, 10 + i % 313
            total_in += tokens_in
            total_out += tokens_out
            call = {
                "timestamp": f"2025-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "provider": "huggingface",
                "model": "openai/gpt-oss-120b:groq",
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "user": f"user-{i % 7}",
            }
            if i % 2:
                call["request_id"] = f"crash-{i}"
            out.write(json.dumps(call) + "\n")
    return total_in, total_out


def stored(engine: Engine) -> tuple[int, int, int, Decimal]:
    with engine.connect() as conn:
        calls, distinct = conn.execute(select(func.count(), func.count(func.distinct(UsageRecord.request_id)))).one()
        tokens = conn.execute(select(func.coalesce(func.sum(UsageRecord.input_tokens), 0))).scalar_one()
        costs = conn.execute(select(UsageRecord.cost_total)).scalars().all()
    return calls, distinct, tokens, sum(costs, Decimal(0))


def count(engine: Engine) -> int:
    """The polling read: a count alone (``stored`` loads every cost, too slow to catch a running import)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def start_import(path: Path, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "SPENDBOARD_IMPORT_BATCH": str(BATCH), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "core", "import", str(path)],
        cwd=path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("kill_fraction", [0.0, 0.35, 0.7], ids=["after-first-batch", "a-third-in", "two-thirds-in"])
def test_killed_import_keeps_whole_batches_and_rerun_completes(
    kill_fraction: float, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    total_in, total_out = write_calls(path)
    expected_cost = total_in * IN_PRICE + total_out * OUT_PRICE
    threshold = max(BATCH, int(ROWS * kill_fraction))

    process = start_import(path, db_url)
    try:
        deadline = time.monotonic() + 120
        while count(engine) < threshold:
            assert process.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline, "the import committed nothing in time"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL

    calls, distinct_ids, _, _ = stored(engine)
    assert 0 < calls < ROWS, f"killed after {calls} rows: not mid-way"
    assert calls % BATCH == 0, f"{calls} rows stored: a partial batch survived the kill"
    assert distinct_ids == calls  # every row has a request_id (given or derived), none twice
    assert check_rollups(engine).matches

    rerun = start_import(path, db_url)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    taken = ROWS - calls
    assert f"{taken} rows taken, {calls} already recorded, 0 refused" in out.decode()

    calls, distinct_ids, tokens, cost = stored(engine)
    assert (calls, distinct_ids, tokens) == (ROWS, ROWS, total_in)
    assert cost == expected_cost
    assert check_rollups(engine).matches
