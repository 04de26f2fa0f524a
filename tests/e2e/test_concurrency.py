"""Several processes record and import at once, with overlapping request_ids.

Every call must be stored exactly once, the roll-ups must equal the raw sums and
the totals must be the exact sums of the calls, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, func, select

from core.recording.rollups import check_rollups
from core.storage.tables import UsageRecord

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
CALLS_EACH = 2_000
OVERLAP_STEP = 1_000  # process k takes calls [k * 1000, k * 1000 + 2000): each half shared with a neighbour
UNIQUE = OVERLAP_STEP * (PROCESSES - 1) + CALLS_EACH
IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000003")  # the seeded HuggingFace defaults


def call(i: int) -> dict[str, object]:
    return {
        "timestamp": f"2025-04-{1 + i % 30:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
        "provider": "huggingface",
        "model": "openai/gpt-oss-120b:groq",
        "input_tokens": 50 + i % 1_013,
        "output_tokens": 5 + i % 397,
        "user": f"team-{i % 5}",
        "request_id": f"req-{i}",
    }


# Records its share in small batches (and some one by one), as an application would.
RECORDER = """
import json, sys, time
from pathlib import Path
from core.storage.engine import make_engine
from core.recording.calls import call_from_mapping, record_batch, record_usage

url, calls_file, go = sys.argv[1:4]
calls = [call_from_mapping(json.loads(line)) for line in Path(calls_file).read_text().splitlines()]
engine = make_engine(url)
while not Path(go).exists():
    time.sleep(0.005)
for start in range(0, len(calls), 25):
    chunk = calls[start : start + 25]
    if start % 500 == 0:
        for one in chunk:
            record_usage(engine, one)
    else:
        record_batch(engine, chunk)
"""


def test_processes_recording_and_importing_at_once_store_each_call_once(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO), "SPENDBOARD_IMPORT_BATCH": "100"}
    workers = []
    for k in range(PROCESSES):
        share = [call(i) for i in range(k * OVERLAP_STEP, k * OVERLAP_STEP + CALLS_EACH)]
        if k % 2:
            share.reverse()  # meet the neighbours' overlapping ids from the other end
        path = tmp_path / f"share-{k}.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in share))
        if k < PROCESSES // 2:
            argv = [sys.executable, "-c", RECORDER, db_url, str(path), str(go)]
        else:
            wait = f"import os,time,runpy,sys\nwhile not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
            wait += "sys.argv=['core','import',sys.argv[1]]\nrunpy.run_module('core',run_name='__main__')"
            argv = [sys.executable, "-c", wait, str(path)]
        workers.append(subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    time.sleep(1.0)  # let every interpreter start and wait at the gate
    go.touch()
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err.decode()[-2000:]

    everything = [call(i) for i in range(UNIQUE)]
    expected_in = sum(int(c["input_tokens"]) for c in everything)  # type: ignore[call-overload]
    expected_out = sum(int(c["output_tokens"]) for c in everything)  # type: ignore[call-overload]
    with engine.connect() as conn:
        calls, distinct_ids, tokens_in, tokens_out = conn.execute(
            select(
                func.count(),
                func.count(func.distinct(UsageRecord.request_id)),
                func.sum(UsageRecord.input_tokens),
                func.sum(UsageRecord.output_tokens),
            )
        ).one()
        costs = conn.execute(select(UsageRecord.cost_total)).scalars().all()
        ids = set(conn.execute(select(UsageRecord.request_id)).scalars())
    assert (calls, distinct_ids) == (UNIQUE, UNIQUE)
    assert ids == {f"req-{i}" for i in range(UNIQUE)}
    assert (tokens_in, tokens_out) == (expected_in, expected_out)
    assert sum(costs, Decimal(0)) == expected_in * IN_PRICE + expected_out * OUT_PRICE
    check = check_rollups(engine)
    assert check.matches, (check.raw, check.rolled)
    assert Decimal(check.raw["cost_total"]) == expected_in * IN_PRICE + expected_out * OUT_PRICE

    imported = [out.decode() for out, _ in outputs[PROCESSES // 2 :]]
    taken = sum(int(re.match(r"(\d+) rows? taken", text).group(1)) for text in imported)  # type: ignore[union-attr]
    assert 0 < taken <= UNIQUE  # the importers took what the recorders had not stored first
