"""Cross-check core/catalog.csv against litellm's public price map.

Why: the seeded catalog is typed in by hand from provider price pages, so a
typo or a price change would silently skew every bill Spendboard shows. The
litellm project ships a maintained price map (model_prices_and_context_window
JSON, USD per token) inside its wheel; comparing against it is a cheap second
opinion. Read it offline from an unzipped wheel; litellm is not a dependency.

Usage:  python bench/check_catalog.py PATH_TO_LITELLM_JSON [PATH_TO_CATALOG_CSV]

Prints one line per catalog row (OK / DIFF / MISSING-IN-LITELLM, or SKIP for
the HuggingFace seed rows, which are not litellm figures) and a summary line.
Prices are compared exactly as Decimals: per_1m / 1_000_000 vs
Decimal(str(json_value)). Always exits 0: it reports, it does not gate.
"""

import csv
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "core" / "catalog" / "catalog.csv"
# catalog provider -> prefix of the litellm key ("" = bare model name)
PREFIX = {
    "openai": "",
    "anthropic": "",
    "gemini": "gemini/",
    "mistral": "mistral/",
    "groq": "groq/",
    "deepseek": "deepseek/",
}
# catalog column -> litellm field
FIELDS = {
    "input_per_1m": "input_cost_per_token",
    "output_per_1m": "output_cost_per_token",
    "cached_input_per_1m": "cache_read_input_token_cost",
}


def per_token(per_1m):
    return Decimal(per_1m) / 1_000_000 if per_1m.strip() else None


def from_json(value):
    return None if value is None else Decimal(str(value))


def show(value):
    return "-" if value is None else format(value, "f")


def check(row, prices):
    """Return (status, litellm key, detail) for one catalog row."""
    provider, model = row["provider"], row["model_name"]
    if provider not in PREFIX:
        return "SKIP", "-", "not cross-checked (seed / no litellm counterpart)"
    key = PREFIX[provider] + model
    entry = prices.get(key)
    if entry is None:
        return "MISSING-IN-LITELLM", key, ""
    diffs = []
    for col, field in FIELDS.items():
        ours, theirs = per_token(row[col]), from_json(entry.get(field))
        if ours != theirs:
            diffs.append(f"{col}: catalog={show(ours)} litellm={show(theirs)}")
    return ("DIFF", key, "; ".join(diffs)) if diffs else ("OK", key, "")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0])
        print("usage: python bench/check_catalog.py PATH_TO_LITELLM_JSON [CATALOG_CSV]")
        return 0
    prices = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    catalog = Path(argv[2]) if len(argv) > 2 else DEFAULT_CATALOG
    with catalog.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    counts = Counter()
    for row in rows:
        status, key, detail = check(row, prices)
        counts[status] += 1
        line = f"{status:<18} {row['provider']},{row['model_name']} -> {key}"
        print(f"{line}  {detail}" if detail else line)
    order = ["OK", "DIFF", "MISSING-IN-LITELLM", "SKIP"]
    print(f"summary: {len(rows)} rows, " + ", ".join(f"{s}={counts[s]}" for s in order))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
