"""Pricing a call in-process (in-memory price index) vs ``litellm.cost_per_token`` on the same calls (goal >= 10x).

litellm is installed only in bench/out/venv-litellm (created here on first run), never in the app's venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from common import OUT, figure, fresh_database

from core.demo import generate
from core.pricing import breakdown, cost_in_pico, current_index
from core.usage import _Pricer

CALLS = 100_000
VENV = OUT / "venv-litellm"


def litellm_python() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print("  installing litellm into bench/out/venv-litellm (once) ...", flush=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True)
        if made.returncode == 0:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm"], capture_output=True)
    ok = python.exists() and subprocess.run([str(python), "-c", "import litellm"], capture_output=True).returncode == 0
    return str(python) if ok else None


def main() -> None:
    calls = list(generate(90, CALLS, seed=5))
    engine = fresh_database("sqlite", "pricing")
    index = current_index(engine)
    started = time.perf_counter()
    for c in calls:
        match = index.lookup(c.provider, c.model, c.timestamp)
        breakdown(match, c.provider, c.model, c.input_tokens, c.output_tokens, c.cached_input_tokens)
    ours = len(calls) / (time.perf_counter() - started)
    # the ingestion path: the lookup memoised per (provider, model, price span), cost in pico-dollars
    started = time.perf_counter()
    pricer = _Pricer(index)
    for c in calls:
        match = pricer.match(c.provider, c.model, c.timestamp, c.timestamp.timestamp())
        cost_in_pico(match.price, c.input_tokens, c.output_tokens, c.cached_input_tokens)
    ingest = len(calls) / (time.perf_counter() - started)
    engine.dispose()
    python = litellm_python()
    if python is None:
        figure(f"pricing a call in-process, {CALLS:,} calls", ours, "calls/s")
        figure(f"pricing a call as record_batch does, {CALLS:,}", ingest, "calls/s")
        print("  litellm line skipped: litellm could not be installed into bench/out/venv-litellm (no registry?)")
        return
    path = OUT / "pricing_calls.json"
    path.write_text(json.dumps([[c.provider, c.model, c.input_tokens, c.output_tokens] for c in calls]))
    side = OUT.parent / "litellm_side.py"
    done = subprocess.run([python, str(side), str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        figure(f"pricing a call in-process, {CALLS:,} calls", ours, "calls/s")
        print(f"  litellm line skipped: {done.stderr.strip().splitlines()[-1:]}")
        return
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    baseline = f"litellm {theirs['version']} cost_per_token"
    figure(
        f"pricing a call in-process (lookup + CostBreakdown), {CALLS:,}",
        ours,
        "calls/s",
        baseline,
        ours / theirs["rate"],
    )
    figure(f"pricing a call as record_batch does, {CALLS:,}", ingest, "calls/s", baseline, ingest / theirs["rate"])
    note = f" ({theirs['failed']:,} calls unknown to litellm)" if theirs["failed"] else ""
    figure(f"litellm.cost_per_token, same calls{note}", theirs["rate"], "calls/s")


if __name__ == "__main__":
    main()
