"""Synthetic usage for a first look and for benchmarks: realistic mix, daily and weekly rhythm.

Demo calls are marked: their request ids are ``spendboard-demo-<n>``, the same n for the same
call however often (or however concurrently) the demo is loaded, so ``rows`` calls are stored
whatever the number of clicks, and ``demo --remove`` deletes them and nothing else.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select

from core.recording.calls import BatchResult, Call, record_batch
from core.recording.rollups import rebuild_in
from core.storage.engine import run_write
from core.storage.tables import PriceCorrection, UsageRecord

DEMO_PREFIX = "spendboard-demo-"

# (provider, model, weight, typical input tokens, typical output tokens)
MODELS = [
    ("openai", "gpt-4o", 14, 1800, 450),
    ("openai", "gpt-4o-mini", 22, 1200, 300),
    ("openai", "gpt-4.1", 6, 2500, 600),
    ("openai", "o4-mini", 5, 1500, 1200),
    ("anthropic", "claude-sonnet-4-20250514", 12, 3000, 700),
    ("anthropic", "claude-3-5-haiku-20241022", 8, 900, 250),
    ("gemini", "gemini-2.5-flash", 10, 2000, 400),
    ("gemini", "gemini-2.5-pro", 3, 4000, 900),
    ("groq", "llama-3.3-70b-versatile", 6, 1000, 350),
    ("mistral", "mistral-small-latest", 4, 800, 300),
    ("deepseek", "deepseek-chat", 4, 1500, 500),
    ("huggingface", "openai/gpt-oss-120b:groq", 6, 1000, 500),
]
USERS = ["support-bot", "search-api", "alice", "bob", "carol", "etl-nightly", "sales-assistant", "docs-writer"]
# what each user's calls are for (the project dimension)
PROJECTS = {
    "support-bot": "support",
    "search-api": "search",
    "etl-nightly": "etl",
    "sales-assistant": "sales",
    "docs-writer": "docs",
}
REASONING_MODELS = frozenset({"o4-mini", "gemini-2.5-pro"})
BATCH_PROVIDERS = frozenset({"openai", "anthropic"})


def _busyness(moment: datetime) -> float:
    """Relative traffic at a moment: office hours and weekdays are busier."""
    hour = moment.hour + moment.minute / 60
    return (0.35 + 0.65 * max(0.0, math.sin((hour - 6) / 14 * math.pi))) * (0.45 if moment.weekday() >= 5 else 1.0)


def generate(days: int, rows: int, end: datetime | None = None, seed: int = 7) -> Iterator[Call]:
    """``rows`` calls spread over the ``days`` ending at ``end``, busier on weekdays and office hours.

    Calls come in time order, a day at a time, as real traffic arrives: batches then
    touch few roll-up buckets, and memory stays flat whatever ``rows`` is.
    """
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    day = timedelta(days=1)
    # each day's share of the calls, from its busyness sampled every quarter hour
    shares = [sum(_busyness(start + i * day + timedelta(minutes=15 * q)) for q in range(96)) for i in range(days)]
    scale = rows / sum(shares)
    counts = [int(share * scale) for share in shares]
    for i in range(rows - sum(counts)):
        counts[i % days] += 1
    weights = [m[2] for m in MODELS]
    user_weights = [30, 25, 10, 8, 7, 10, 6, 4]
    choose = rng.choices
    number = 0
    for index, count in enumerate(counts):
        day_start = start + index * day
        offsets: list[float] = []
        while len(offsets) < count:
            offset = rng.random() * 86400
            # keep a moment with probability following office hours and weekdays (rejection sampling)
            if rng.random() <= _busyness(day_start + timedelta(seconds=offset)):
                offsets.append(offset)
        offsets.sort()
        models = choose(MODELS, weights, k=count)
        users = choose(USERS, user_weights, k=count)
        for offset, (provider, model, _w, typical_in, typical_out), user in zip(offsets, models, users, strict=True):
            number += 1
            tokens_in = max(1, int(rng.lognormvariate(math.log(typical_in), 0.6)))
            tokens_out = max(1, int(rng.lognormvariate(math.log(typical_out), 0.7)))
            cached = int(tokens_in * rng.choice((0, 0, 0, 0.5, 0.8))) if provider in ("openai", "anthropic") else 0
            # Anthropic writes the prompt it later reads: some calls pay the (5-minute) cache write
            written = int((tokens_in - cached) * 0.6) if provider == "anthropic" and rng.random() < 0.2 else 0
            reasoning = int(tokens_out * 0.6) if model in REASONING_MODELS else 0
            searches = rng.randint(1, 3) if user == "search-api" and provider in ("anthropic", "gemini") else 0
            tier = "batch" if user == "etl-nightly" and provider in BATCH_PROVIDERS else "standard"
            yield Call(
                day_start + timedelta(seconds=offset),
                provider,
                model,
                tokens_in,
                tokens_out,
                cached,
                user,
                f"{DEMO_PREFIX}{number}",
                cache_write_tokens=written,
                reasoning_tokens=reasoning,
                web_search_calls=searches,
                service_tier=tier,
                project=PROJECTS.get(user, "playground"),
            )


def load_demo(
    engine: Engine,
    days: int = 90,
    rows: int = 20_000,
    batch_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Record ``rows`` synthetic calls in batches (one transaction each)."""
    recorded = 0
    batch: list[Call] = []
    for call in generate(days, rows):
        batch.append(call)
        if len(batch) >= batch_size:
            recorded += record_batch(engine, batch).recorded
            batch = []
            if progress:
                progress(recorded)
    if batch:
        recorded += record_batch(engine, batch).recorded
        if progress:
            progress(recorded)
    return BatchResult(recorded, 0)


def is_demo(request_id: str | None) -> bool:
    return bool(request_id) and str(request_id).startswith(DEMO_PREFIX)


def remove_demo(engine: Engine) -> int:
    """Delete the demo calls (and any correction of them) and recompute the roll-ups; real calls stay."""

    def work(conn: Connection) -> int:
        marked = UsageRecord.request_id.startswith(DEMO_PREFIX, autoescape=True)
        count = conn.execute(select(func.count()).select_from(UsageRecord).where(marked)).scalar_one()
        if count:
            ids = select(UsageRecord.id).where(marked)
            conn.execute(delete(PriceCorrection).where(PriceCorrection.usage_id.in_(ids)))
            conn.execute(delete(UsageRecord).where(marked))
            rebuild_in(conn)
        return int(count)

    return run_write(engine, work)
