"""Runs inside bench/out/venv-litellm: time litellm.cost_per_token on the calls in a JSON file; prints calls/s."""

import json
import os
import sys
import time
from importlib.metadata import version

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: use the map shipped in the wheel

import litellm  # noqa: E402

calls = json.load(open(sys.argv[1]))
priced = failed = 0
started = time.perf_counter()
for provider, model, tokens_in, tokens_out in calls:
    try:
        litellm.cost_per_token(
            model=model, prompt_tokens=tokens_in, completion_tokens=tokens_out, custom_llm_provider=provider
        )
        priced += 1
    except Exception:  # noqa: BLE001 - a model litellm does not know still costs it the lookup
        failed += 1
elapsed = time.perf_counter() - started
print(json.dumps({"rate": len(calls) / elapsed, "priced": priced, "failed": failed, "version": version("litellm")}))
