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


# One tag by provider or model (the tag roll-ups, usage_tag_rollups, plus the tag's raw edges)

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"),
    ("acme", "rocket"),  # no price: estimated, then repriced
]
SUMMED = ("calls", "input_tokens", "cost_input", "cost_total", "estimated_calls", "estimated_cost")


def _record_models(engine: Engine, count: int = 700, seed: int = 23) -> None:
    """Tagged and untagged calls over 24 days, three providers, four models; some marked as demo calls."""
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        provider, model = rng.choice(MODELS)
        tags = rng.sample(TAGS, rng.randint(0, 3))
        calls.append(
            make_call(
                provider,
                model,
                rng.randint(1, 20_000),
                rng.randint(0, 5_000),
                user=rng.choice(["alice", "bob", None]),
                request_id=f"spendboard-demo-{i}" if i % 5 == 0 else f"m-{i}",
                timestamp=(START + timedelta(seconds=rng.randint(0, 24 * 86400))).isoformat(),
                tags=tags or None,
                now=START + timedelta(days=60),
            )
        )
    for first in range(0, count, 250):  # several batches: the roll-ups are added to, not only made
        record_batch(engine, calls[first : first + 250])


def _stored_models(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                UsageRecord.id,
                UsageRecord.timestamp,
                UsageRecord.provider,
                UsageRecord.model,
                UsageRecord.input_tokens,
                UsageRecord.cost_input,
                UsageRecord.cost_total,
                UsageRecord.matched_by,
            )
        ).all()
        tags: dict[int, set[str]] = defaultdict(set)
        for usage_id, tag in conn.execute(select(CallTag.usage_id, CallTag.tag)):
            tags[usage_id].add(tag)
    return [(r, tags[r.id]) for r in rows]


def _raw(stored, start, end, tag, key=None, tz=None, **where) -> dict:
    """Sums of the raw calls carrying ``tag`` in [start, end) matching ``where``, per ``key`` (and local day)."""
    out: dict = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0), 0, Decimal(0)])
    for row, call_tags in stored:
        if not start <= row.timestamp < end or tag not in call_tags:
            continue
        if any(getattr(row, name) != value for name, value in where.items()):
            continue
        group = (row.timestamp.astimezone(tz).date() if tz else None, getattr(row, key) if key else None)
        sums = out[group]
        estimated = row.matched_by == "estimate"
        for i, value in enumerate(
            (1, row.input_tokens, row.cost_input, row.cost_total, int(estimated), row.cost_total * estimated)
        ):
            sums[i] += value
    return {group: tuple(sums) for group, sums in out.items()}


def _sums(totals: reports.Totals) -> tuple:
    return tuple(getattr(totals, name) for name in SUMMED)


def _check_one_tag_by_provider_and_model(engine: Engine) -> None:
    """Every report of one tag by (or filtered on) provider or model equals the raw calls, to the pico-dollar."""
    stored = _stored_models(engine)
    periods = [
        _period(date(2026, 11, 2), date(2026, 11, 19)),  # 18 Kolkata days: 7-day blocks, raw edges at both ends
        _period(date(2026, 11, 5), date(2026, 11, 5)),  # one day
        # UTC quarter hours far from midnight (a report widens a period to quarter hours)
        (START + timedelta(days=3, hours=2, minutes=15), START + timedelta(days=12, hours=20, minutes=45)),
        (START - timedelta(days=3), START + timedelta(days=30)),  # whole UTC days around all the calls
    ]
    tested = 0
    for start, end in periods:
        for tag in ("env:prod", "nightly", "feature:chat"):
            for by in ("provider", "model"):
                rows = reports.breakdown(engine, start, end, by, {"tag": tag})
                expected = _raw(stored, start, end, tag, by)
                assert {(None, r.key): _sums(r.totals) for r in rows} == expected, (start, end, tag, by)
                top = reports.breakdown(engine, start, end, by, {"tag": tag}, limit=2)
                assert top == rows[:2]
                tested += len(rows)
            by_day = reports.over_time(engine, start, end, KOLKATA, "day", "provider", tags=[tag])
            assert {(r.period, r.key): _sums(r.totals) for r in by_day} == _raw(
                stored, start, end, tag, "provider", KOLKATA
            )
            for provider, model in MODELS[::2]:
                expected_total = _raw(stored, start, end, tag, provider=provider).get((None, None))
                found = reports.totals(engine, start, end, {"provider": provider}, tags=[tag])
                assert _sums(found) == (expected_total or _sums(reports.Totals()))
                models = reports.breakdown(engine, start, end, "model", {"provider": provider, "tag": tag})
                assert {(None, r.key): _sums(r.totals) for r in models} == _raw(
                    stored, start, end, tag, "model", provider=provider
                )
                found = reports.totals(engine, start, end, {"model": model, "tag": tag})
                expected_total = _raw(stored, start, end, tag, model=model).get((None, None))
                assert _sums(found) == (expected_total or _sums(reports.Totals()))
    assert tested > 20  # the periods hold calls of every provider and model


def test_one_tag_by_provider_and_model_equals_raw_calls_after_repricing_and_demo_removal(engine: Engine) -> None:
    from core.pricing.edits import PriceEdit, save_price
    from core.recording.audit import reprice_estimated
    from core.recording.demo import remove_demo
    from core.storage.tag_tables import TagRollup

    _record_models(engine)
    with engine.connect() as conn:
        assert conn.execute(select(TagRollup.tag).limit(1)).first() is not None  # the path under test has rows
    assert check_rollups(engine).matches
    _check_one_tag_by_provider_and_model(engine)

    save_price(
        engine,
        PriceEdit("acme", "rocket", "2", "8", changed_by="admin", effective_from=datetime(2025, 1, 1, tzinfo=UTC)),
    )
    assert reprice_estimated(engine).repriced > 50  # the roll-ups move by the repricing's deltas
    assert check_rollups(engine).matches
    _check_one_tag_by_provider_and_model(engine)

    assert remove_demo(engine) > 100  # tagged demo calls deleted, every roll-up rebuilt
    assert check_rollups(engine).matches
    _check_one_tag_by_provider_and_model(engine)


def test_check_rollups_finds_a_wrong_tag_rollup_row_and_rebuild_mends_it(engine: Engine) -> None:
    from sqlalchemy import update

    from core.storage.tag_tables import TagRollup

    _record(engine, count=120)
    assert check_rollups(engine).matches
    with engine.begin() as conn:
        row = conn.execute(select(TagRollup.tag, TagRollup.bucket_start).limit(1)).one()
        conn.execute(
            update(TagRollup)
            .where(TagRollup.tag == row.tag, TagRollup.bucket_start == row.bucket_start)
            .values(cost_total=TagRollup.cost_total + Decimal("0.000000000001"))
        )
    assert not check_rollups(engine).matches
    rebuild_rollups(engine)
    assert check_rollups(engine).matches


def test_one_tag_by_provider_reads_the_tag_rollups_by_key_prefix(engine: Engine) -> None:
    """SQLite's plan (deterministic): each bucket a (tag, grain, bucket_start) prefix of the tag roll-ups' key,
    the raw edges through call_tags' (tag, timestamp) index."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan is deterministic; PostgreSQL chooses by statistics")
    _record(engine, count=60)
    labelled = [(0, *_period(date(2026, 11, 2), date(2026, 11, 19)))]
    query = reports._from_tag_rollups(engine, labelled, "provider", {}, "env:prod")
    assert query is not None
    with engine.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    assert "SEARCH usage_tag_rollups USING PRIMARY KEY (tag=? AND grain=? AND bucket_start=?)" in plan, plan
    assert any("ix_call_tags_tag_time (tag=? AND timestamp>? AND timestamp<?)" in step for step in plan), plan
