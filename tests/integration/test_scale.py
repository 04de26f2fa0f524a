"""Issue 11: roll-ups by entity, exact period edges from the raw logs, top-N, and PostgreSQL COPY ingestion."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, text

from core.pricing.edits import PriceEdit, save_price
from core.recording.audit import reprice_estimated
from core.recording.calls import make_call, record_batch
from core.recording.rollups import DAY, WEEK, check_rollups, rebuild_rollups
from core.reporting import aggregates as reports
from core.reporting.aggregates import NO_PROJECT, NO_USER, Totals
from core.storage.tables import EntityRollup, UsageRecord, UsageRollup

ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/Los_Angeles", "Pacific/Chatham")
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku-20241022"), ("x", "y")]


def _calls(count: int = 600, seed: int = 1) -> list:
    """Calls at random minutes over three weeks (random order), many near local midnights."""
    rng = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    calls = []
    for i in range(count):
        moment = start + timedelta(minutes=rng.randrange(21 * 24 * 60), seconds=rng.randrange(60))
        provider, model = rng.choice(MODELS)
        user = rng.choice([None, "alice", "bob", "carol", "dave"])
        project = rng.choice([None, "web", "batch"])
        calls.append(
            make_call(
                provider,
                model,
                rng.randrange(1, 5000),
                rng.randrange(20, 900),
                user=user,
                request_id=f"scale-{seed}-{i}",
                timestamp=moment.isoformat(),
                project=project,
                reasoning_tokens=rng.choice([0, 0, 17]),
            )
        )
    return calls


def _raw(engine: Engine, start: datetime, end: datetime, by: str | None, where: dict | None) -> dict:
    """The truth, summed in Python from every stored row: {key: Totals}."""
    column = {"user": "user_id", "project": "project", "provider": "provider", "model": "model"}
    none = {"user": NO_USER, "project": NO_PROJECT}
    out: dict = {}
    with engine.connect() as conn:
        rows = conn.execute(select(UsageRecord)).all()
    for row in rows:
        if not start <= row.timestamp < end:
            continue
        values = {name: getattr(row, column[name]) for name in column}
        labelled = {name: (values[name] if values[name] is not None else none.get(name)) for name in column}
        if any(labelled[name] != wanted for name, wanted in (where or {}).items()):
            continue
        key = labelled[by] if by else None
        old = out.get(key, Totals())
        estimated = row.matched_by == "estimate"
        out[key] = Totals(
            old.calls + 1,
            old.input_tokens + row.input_tokens,
            old.output_tokens + row.output_tokens,
            old.cached_input_tokens + row.cached_input_tokens,
            old.cost_input + row.cost_input,
            old.cost_output + row.cost_output,
            old.cost_total + row.cost_total,
            old.estimated_calls + estimated,
            old.estimated_cost + (row.cost_total if estimated else Decimal(0)),
            old.cache_write_tokens + row.cache_write_tokens,
            old.cache_write_1h_tokens + row.cache_write_1h_tokens,
            old.reasoning_tokens + row.reasoning_tokens,
            old.web_search_calls + row.web_search_calls,
        )
    return out


def _periods(zone: str) -> list[tuple[datetime, datetime]]:
    tz = ZoneInfo(zone)
    day = datetime(2025, 6, 3, tzinfo=tz)
    return [
        (day, day + timedelta(days=1)),  # a local day
        (day, datetime(2025, 6, 17, tzinfo=tz)),  # two weeks: 7-day blocks and days
        (datetime(2025, 5, 28, tzinfo=tz), datetime(2025, 6, 30, tzinfo=tz)),  # everything
        (day + timedelta(hours=5), day + timedelta(hours=9)),  # shorter than a day: raw only
    ]


@pytest.mark.parametrize("zone", ZONES)
def test_periods_exact_in_every_zone_for_every_path(engine: Engine, zone: str) -> None:
    record_batch(engine, _calls())
    for start, end in _periods(zone):
        everything = _raw(engine, start, end, None, None).get(None, Totals())
        assert reports.totals(engine, start, end) == everything
        for by in ("user", "project", "model"):
            want = _raw(engine, start, end, by, None)
            got = {row.key: row.totals for row in reports.breakdown(engine, start, end, by)}
            assert got == want, (zone, start, by)
        for where in ({"user": "alice"}, {"user": NO_USER}, {"project": "web"}, {"project": NO_PROJECT}):
            assert reports.totals(engine, start, end, where) == _raw(engine, start, end, None, where).get(
                None, Totals()
            )
        # mixed dimensions come from the raw logs
        where = {"model": "gpt-4o", "user": "bob"}
        assert reports.totals(engine, start, end, where) == _raw(engine, start, end, None, where).get(None, Totals())
        got = {r.key: r.totals for r in reports.breakdown(engine, start, end, "user", {"provider": "openai"})}
        assert got == _raw(engine, start, end, "user", {"provider": "openai"})
        got = {r.key: r.totals for r in reports.breakdown(engine, start, end, "project", {"user": "carol"})}
        assert got == _raw(engine, start, end, "project", {"user": "carol"})


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu"])
def test_over_time_by_user_and_project_is_exact_per_local_day(engine: Engine, zone: str) -> None:
    record_batch(engine, _calls(400, seed=2))
    tz = ZoneInfo(zone)
    start, end = datetime(2025, 6, 2, tzinfo=tz), datetime(2025, 6, 12, tzinfo=tz)
    for by in ("user", "project"):
        rows = reports.over_time(engine, start, end, tz, "day", by=by)
        for row in rows:
            assert row.period is not None
            a = datetime.combine(row.period, datetime.min.time(), tz)
            assert row.totals == _raw(engine, a, a + timedelta(days=1), by, None)[row.key]
        assert sum(r.totals.calls for r in rows) == _raw(engine, start, end, None, None)[None].calls
    rows = reports.over_time(engine, start, end, tz, "day", where={"user": "alice"})
    assert sum(r.totals.cost_total for r in rows) == _raw(engine, start, end, None, {"user": "alice"})[None].cost_total


def test_top_n_is_the_head_of_the_full_breakdown(engine: Engine) -> None:
    record_batch(engine, _calls(300, seed=3))
    tz = ZoneInfo("Asia/Kolkata")
    start, end = datetime(2025, 6, 2, tzinfo=tz), datetime(2025, 6, 20, tzinfo=tz)
    for by in ("user", "project", "model", "provider"):
        full = reports.breakdown(engine, start, end, by)
        assert reports.breakdown(engine, start, end, by, limit=2) == full[:2]
        assert reports.breakdown(engine, start, end, by, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        reports.breakdown(engine, start, end, "user", limit=-1)


def _many_users(count: int, seed: int) -> list:
    """Calls of ``count`` users with Zipf-like spend, at random moments over three weeks."""
    rng = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    calls = []
    for i in range(count * 12):
        user = min(int(rng.paretovariate(0.8)), count)  # a few users make most calls
        calls.append(
            make_call(
                "openai",
                "gpt-4o",
                rng.randrange(1, 50_000),
                rng.randrange(1, 5_000),
                user=f"u{user:03d}" if rng.random() > 0.02 else None,
                project=f"p{user % 17:02d}",
                request_id=f"many-{seed}-{i}",
                timestamp=(start + timedelta(seconds=rng.randrange(21 * 86400))).isoformat(),
            )
        )
    return calls


@pytest.mark.parametrize("zone", ZONES)
def test_top_n_from_whole_days_is_proved_and_equals_the_exact_ranking(engine: Engine, zone: str) -> None:
    """With many users the head of the ranking is found from whole UTC days (no raw edges),
    and it is exactly the head of the full breakdown, sums and all."""
    record_batch(engine, _many_users(60, seed=11))
    tz = ZoneInfo(zone)
    start, end = datetime(2025, 6, 3, tzinfo=tz), datetime(2025, 6, 17, tzinfo=tz)
    for by in ("user", "project"):
        full = reports.breakdown(engine, start, end, by)
        for limit in (1, 3, 5):
            found = reports.top_from_whole_days(engine, (0, start, end), by, limit)
            assert found is not None, (by, limit)  # proved: the spend just outside cannot reorder the head
            assert [(key, totals) for _label, key, totals in found] == [(r.key, r.totals) for r in full[:limit]]
            assert reports.breakdown(engine, start, end, by, limit=limit) == full[:limit]


def test_top_n_falls_back_to_the_exact_ranking_when_the_edges_could_reorder_it(engine: Engine) -> None:
    """Eleven users who spend a lot just outside the period (inside its widened UTC days) and a
    little inside it, and one who spends more inside it: the widened ranking's candidates are
    the eleven, the bound cannot exclude the twelfth, so every key is ranked exactly."""
    tz = ZoneInfo("Asia/Kolkata")
    start, end = datetime(2025, 6, 3, tzinfo=tz), datetime(2025, 6, 5, tzinfo=tz)  # from 06-02 18:30 UTC
    inside, outside = start + timedelta(hours=10), start - timedelta(hours=3)  # 06-02 15:30 UTC: same UTC day
    calls = []
    for i in range(11):
        calls.append(make_call("openai", "gpt-4o", 400_000, 0, user=f"decoy-{i:02d}", timestamp=outside))
        calls.append(make_call("openai", "gpt-4o", 1_000, 0, user=f"decoy-{i:02d}", timestamp=inside))
    calls.append(make_call("openai", "gpt-4o", 100_000, 0, user="real", timestamp=inside))
    record_batch(engine, calls)
    assert reports.top_from_whole_days(engine, (0, start, end), "user", 1) is None
    top = reports.breakdown(engine, start, end, "user", limit=1)
    assert [r.key for r in top] == ["real"]
    assert top == reports.breakdown(engine, start, end, "user")[:1]


def test_ranking_reads_the_period_edges_from_the_time_index_alone(engine: Engine) -> None:
    """Top users in a half-hour zone: the raw edges come from ix_usage_time alone (it carries the
    user, project and cost), and the users' roll-ups from their key (SQLite's plan; PostgreSQL's
    depends on its statistics)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan is deterministic; PostgreSQL chooses by statistics")
    tz = ZoneInfo("Asia/Kolkata")
    labelled = [(0, datetime(2025, 6, 2, tzinfo=tz), datetime(2025, 6, 20, tzinfo=tz))]
    for by in ("user", "project"):
        ranking = reports._from_entities(engine, labelled, by, None, ["calls", "cost_total"])
        assert ranking is not None
        with engine.connect() as conn:
            sql = str(ranking.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        assert any("api_usage_logs USING COVERING INDEX ix_usage_time" in step for step in plan), plan
        assert any("usage_entity_rollups USING PRIMARY KEY" in step for step in plan), plan


def test_entity_pieces_snap_to_the_nearest_midnight() -> None:
    # Kolkata local day 2025-06-03: 06-02 18:30 UTC .. 06-03 18:30 UTC; nearest midnights are 06-03 and 06-04
    start = datetime(2025, 6, 2, 18, 30, tzinfo=UTC)
    buckets, raw = reports.entity_pieces([(0, start, start + timedelta(days=1))])
    midnight = datetime(2025, 6, 3, tzinfo=UTC)
    assert buckets == [(0, DAY, int(midnight.timestamp()))]
    assert raw == [
        (0, 1, start, midnight),  # 5.5 h added before the day bucket
        (0, -1, start + timedelta(days=1), midnight + timedelta(days=1)),  # 5.5 h of the bucket taken away
    ]
    # a long period reads 7-day blocks in the middle
    buckets, _raw_pieces = reports.entity_pieces([(0, midnight, midnight + timedelta(days=40))])
    assert any(grain == WEEK for _label, grain, _bucket in buckets)
    assert len(buckets) < 40


def test_entity_rollups_match_raw_after_duplicates_reprice_and_rebuild(engine: Engine) -> None:
    calls = _calls(300, seed=4)
    record_batch(engine, calls[:200])
    result = record_batch(engine, calls)  # 200 duplicates
    assert (result.recorded, result.duplicates) == (100, 200)
    assert check_rollups(engine).matches
    edit = PriceEdit("x", "y", "2", "8", changed_by="admin", effective_from=datetime(2025, 1, 1, tzinfo=UTC))
    save_price(engine, edit)
    assert reprice_estimated(engine).repriced > 0
    assert check_rollups(engine).matches
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(EntityRollup)).scalar_one()
    rebuild_rollups(engine)
    assert check_rollups(engine).matches
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EntityRollup)).scalar_one() == before
        # the series no longer carries users or projects
        assert "user_id" not in UsageRollup.__table__.c


def test_a_broken_entity_rollup_is_caught(engine: Engine) -> None:
    record_batch(engine, _calls(50, seed=5))
    assert check_rollups(engine).matches
    with engine.begin() as conn:
        conn.execute(text("UPDATE usage_entity_rollups SET calls = calls + 1 WHERE dimension = 'project'"))
    assert not check_rollups(engine).matches


def test_postgresql_copy_ingestion_stores_each_request_once(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY ingestion is PostgreSQL's path")
    calls = _calls(120, seed=6)
    first = record_batch(engine, calls[:70])
    assert first.recorded == 70 and len(set(first.ids)) == 70
    # one connection reuses its staging table, emptied by each batch
    second = record_batch(engine, calls + calls[:5])
    assert (second.recorded, second.duplicates) == (50, 75)
    no_ids = [make_call("openai", "gpt-4o", 10, 1, timestamp="2025-06-05T00:00:00Z") for _ in range(3)]
    assert record_batch(engine, no_ids).recorded == 3
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
        money = conn.execute(select(func.sum(UsageRecord.cost_total))).scalar_one()
    assert stored == 123
    everything = _raw(engine, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC), None, None)
    assert money == everything[None].cost_total
    assert check_rollups(engine).matches
