"""Reports by tag and with tag filters equal sums of the stored calls, exactly, on SQLite and PostgreSQL.

Periods in Asia/Kolkata end 5.5 hours from a UTC midnight, so every path (tag roll-ups plus raw
edges, the tag index for several tags, tags mixed with a provider or a user) is exercised.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from core.recording.calls import CallError, make_call, record_batch
from core.recording.rollups import check_rollups, rebuild_rollups
from core.reporting import aggregates as reports
from core.storage.tables import UsageRecord
from core.storage.tag_tables import CallTag
from core.times import local_midnight

TAGS = ["feature:summarize", "feature:chat", "env:prod", "env:dev", "nightly", "Nightly"]
KOLKATA = ZoneInfo("Asia/Kolkata")
START = datetime(2026, 11, 1, tzinfo=UTC)


def _record(engine: Engine, count: int = 400, seed: int = 7) -> None:
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        moment = START + timedelta(seconds=rng.randint(0, 20 * 86400))
        tags = rng.sample(TAGS, rng.randint(0, 3))
        calls.append(
            make_call(
                rng.choice(["openai", "anthropic"]),
                rng.choice(["gpt-4o", "gpt-4o-mini"]),
                rng.randint(1, 20_000),
                rng.randint(0, 5_000),
                user=rng.choice(["alice", "bob", None]),
                project=rng.choice(["acme", None]),
                request_id=f"t-{i}",
                timestamp=moment.isoformat(),
                tags=tags or None,
            )
        )
    record_batch(engine, calls[: count // 2])
    record_batch(engine, calls[count // 2 :])


def _stored(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                UsageRecord.id, UsageRecord.timestamp, UsageRecord.provider, UsageRecord.user_id, UsageRecord.cost_total
            )
        ).all()
        tags: dict[int, set[str]] = defaultdict(set)
        for usage_id, tag in conn.execute(select(CallTag.usage_id, CallTag.tag)):
            tags[usage_id].add(tag)
    return [(r.timestamp, r.provider, r.user_id, r.cost_total, tags[r.id]) for r in rows]


def _expected(stored, start, end, *, tags=(), provider=None, user=None, by_tag=False):
    out: dict[str | None, list] = defaultdict(lambda: [0, Decimal(0)])
    for moment, prov, usr, cost, call_tags in stored:
        if not start <= moment < end or not set(tags) <= call_tags:
            continue
        if provider and prov != provider or user and usr != user:
            continue
        for key in sorted(call_tags) if by_tag else [None]:
            out[key][0] += 1
            out[key][1] += cost
    return {k: (v[0], v[1]) for k, v in out.items()}


def _period(first: date, last: date) -> tuple[datetime, datetime]:
    return local_midnight(first, KOLKATA), local_midnight(last + timedelta(days=1), KOLKATA)


def test_by_tag_counts_each_call_under_each_tag_and_totals_once(engine: Engine) -> None:
    _record(engine)
    assert check_rollups(engine).matches
    stored = _stored(engine)
    start, end = _period(date(2026, 11, 3), date(2026, 11, 12))
    rows = reports.breakdown(engine, start, end, "tag")
    got = {r.key: (r.totals.calls, r.totals.cost_total) for r in rows}
    assert got == _expected(stored, start, end, by_tag=True)
    assert "Nightly" in got and "nightly" in got  # case-sensitive
    assert None not in got and "" not in got  # untagged calls: no row
    total = reports.totals(engine, start, end)
    assert total.calls == _expected(stored, start, end)[None][0]
    assert sum(r.totals.calls for r in rows) > total.calls  # rows overlap, the total counts a call once
    top = reports.breakdown(engine, start, end, "tag", limit=2)
    assert [r.key for r in top] == [r.key for r in rows[:2]]


@pytest.mark.parametrize(
    "tags, provider, user",
    [
        (("env:prod",), None, None),
        (("env:prod", "feature:chat"), None, None),
        (("env:prod", "feature:chat", "nightly"), None, None),
        (("feature:summarize",), "openai", None),
        (("nightly",), None, "alice"),
        ((), "anthropic", None),
    ],
)
def test_tag_filters_all_must_match(engine: Engine, tags, provider, user) -> None:
    _record(engine)
    stored = _stored(engine)
    where = {k: v for k, v in (("provider", provider), ("user", user)) if v}
    start, end = _period(date(2026, 11, 2), date(2026, 11, 15))
    expected = _expected(stored, start, end, tags=tags, provider=provider, user=user).get(None, (0, Decimal(0)))
    found = reports.totals(engine, start, end, where or None, tags=tags)
    assert (found.calls, found.cost_total) == expected
    assert expected[0] > 0 or len(tags) == 3
    # the same filter by day in Kolkata sums to the same, and by provider too
    days = reports.over_time(engine, start, end, KOLKATA, "day", None, where or None, tags=tags)
    assert sum(r.totals.calls for r in days) == expected[0]
    providers = reports.breakdown(engine, start, end, "provider", where or None, tags=tags)
    assert sum((r.totals.cost_total for r in providers), Decimal(0)) == expected[1]
    # by tag among the filtered calls: the other tags they carry
    by_tag = reports.breakdown(engine, start, end, "tag", where or None, tags=tags)
    assert {r.key: (r.totals.calls, r.totals.cost_total) for r in by_tag} == _expected(
        stored, start, end, tags=tags, provider=provider, user=user, by_tag=True
    )


def test_rebuild_keeps_tag_rollups(engine: Engine) -> None:
    _record(engine, count=120)
    start, end = _period(date(2026, 11, 1), date(2026, 11, 20))
    before = reports.breakdown(engine, start, end, "tag")
    rebuild_rollups(engine)
    assert check_rollups(engine).matches
    assert reports.breakdown(engine, start, end, "tag") == before


def test_bad_tags_are_refused_naming_field_and_value(engine: Engine) -> None:
    with pytest.raises(CallError, match=r"tags\[1\]: not a string: 3"):
        make_call("openai", "gpt-4o", 1, 1, tags=["ok", 3])
    with pytest.raises(CallError, match="at most 20 tags, got 21"):
        make_call("openai", "gpt-4o", 1, 1, tags=[f"t{i}" for i in range(21)])
    with pytest.raises(CallError, match="at most 100 characters"):
        make_call("openai", "gpt-4o", 1, 1, tags=["x" * 101])
    with pytest.raises(CallError, match="empty tag"):
        make_call("openai", "gpt-4o", 1, 1, tags=["a", ""])
    call = make_call("openai", "gpt-4o", 1, 1, tags=["a", "b", "a", "A"])
    assert call.tags == ("a", "b", "A")
