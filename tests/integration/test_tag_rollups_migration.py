"""Migrations 0017 and 0018 on a database of an earlier revision holding tagged calls: ``usage_tag_rollups`` and
the tags' six-hour rows filled from ``call_tags`` and the logs, so reports by tag (and one tag by provider or
model) equal the raw calls; and back down again.
SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from pg_schema import BACKENDS, own_schema
from sqlalchemy import Engine, inspect, select, text

from core.pricing.seeding import initialize_default_pricing
from core.recording.calls import make_call, record_batch
from core.recording.rollups import TAG_GRAINS, check_rollups
from core.reporting import aggregates as reports
from core.storage.engine import make_engine
from core.storage.migrate import head_revision, upgrade_database
from core.storage.migrations import alembic_config
from core.storage.tables import UsageRecord
from core.storage.tag_tables import CallTag
from core.times import local_midnight

PREVIOUS = "0016_counter_index_without_spend"
START = datetime(2026, 11, 1, tzinfo=UTC)
KOLKATA = ZoneInfo("Asia/Kolkata")
TAGS = ["env:prod", "env:dev", "feature:chat", "nightly"]
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("acme", "rocket")]


def _migrate(engine: Engine, revision: str, down: bool = False) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture(params=BACKENDS)
def previous(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at 0016 holding 400 calls (most of them tagged) over 20 days, with their roll-ups.

    The calls are recorded by this code, then the schema is taken down to 0016: what is left is what
    0016 keeps of them (the logs, ``call_tags``, the series and entity roll-ups).
    """
    with ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'r16.db'}"
            if request.param == "sqlite"
            else stack.enter_context(own_schema("sb_mig17"))
        )
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade_database(engine)
        initialize_default_pricing(engine)
        rng = random.Random(17)
        calls = []
        for i in range(400):
            provider, model = rng.choice(MODELS)
            calls.append(
                make_call(
                    provider,
                    model,
                    rng.randint(1, 20_000),
                    rng.randint(0, 5_000),
                    request_id=f"r-{i}",
                    timestamp=(START + timedelta(seconds=rng.randint(0, 20 * 86400))).isoformat(),
                    tags=rng.sample(TAGS, rng.randint(0, 3)) or None,
                    now=START + timedelta(days=60),
                )
            )
        record_batch(engine, calls[:200])
        record_batch(engine, calls[200:])
        _migrate(engine, PREVIOUS, down=True)
        yield engine


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _raw(engine: Engine, start: datetime, end: datetime, tag: str, by: str) -> dict[str, tuple[int, Decimal]]:
    with engine.connect() as conn:
        tagged = set(conn.execute(select(CallTag.usage_id).where(CallTag.tag == tag)).scalars())
        rows = conn.execute(
            select(
                UsageRecord.id, UsageRecord.timestamp, UsageRecord.provider, UsageRecord.model, UsageRecord.cost_total
            )
        ).all()
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for row in rows:
        if row.id in tagged and start <= row.timestamp < end:
            out[getattr(row, by)][0] += 1
            out[getattr(row, by)][1] += row.cost_total
    return {key: (calls, cost) for key, (calls, cost) in out.items()}


def _reported(engine: Engine, start: datetime, end: datetime, tag: str, by: str) -> dict[str, tuple[int, Decimal]]:
    rows = reports.breakdown(engine, start, end, by, {"tag": tag})
    return {r.key: (r.totals.calls, r.totals.cost_total) for r in rows}


def test_the_tag_rollups_are_filled_from_the_tagged_calls_and_dropped_on_the_way_back(previous: Engine) -> None:
    assert "usage_tag_rollups" not in _tables(previous)
    assert "call_tags" in _tables(previous)
    done = upgrade_database(previous)
    assert done and head_revision() in done[-1]
    with previous.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        assert conn.execute(text("SELECT count(*) FROM usage_tag_rollups")).scalar_one() > 100
    assert check_rollups(previous).matches  # every tag roll-up row equals the raw sums of its key
    periods = [
        (local_midnight(date(2026, 11, 2), KOLKATA), local_midnight(date(2026, 11, 18), KOLKATA)),
        (START, START + timedelta(days=21)),
    ]
    for start, end in periods:
        for tag in TAGS:
            for by in ("provider", "model"):
                expected = _raw(previous, start, end, tag, by)
                assert expected and _reported(previous, start, end, tag, by) == expected
            days = reports.over_time(previous, start, end, KOLKATA, "day", "provider", tags=[tag])
            assert sum((r.totals.cost_total for r in days), Decimal(0)) == sum(
                (cost for _calls, cost in _raw(previous, start, end, tag, "provider").values()), Decimal(0)
            )
    start, end = periods[1]  # whole UTC days: no six-hour tag rows read (0016 has none)
    by_tag = reports.breakdown(previous, start, end, "tag")
    _migrate(previous, PREVIOUS, down=True)
    assert "usage_tag_rollups" not in _tables(previous)
    with previous.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == PREVIOUS
    assert reports.breakdown(previous, start, end, "tag") == by_tag  # 0016's own roll-ups untouched
    upgrade_database(previous)
    assert check_rollups(previous).matches


def _by_tag(engine: Engine, start: datetime, end: datetime) -> dict[str, tuple[int, Decimal]]:
    """Calls and cost per tag in [start, end) from the raw rows (a call counts under each of its tags)."""
    with engine.connect() as conn:
        tags: dict[int, list[str]] = defaultdict(list)
        for usage_id, tag in conn.execute(select(CallTag.usage_id, CallTag.tag)):
            tags[usage_id].append(tag)
        rows = conn.execute(select(UsageRecord.id, UsageRecord.timestamp, UsageRecord.cost_total)).all()
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for row in rows:
        if start <= row.timestamp < end:
            for tag in tags[row.id]:
                out[tag][0] += 1
                out[tag][1] += row.cost_total
    return {tag: (calls, cost) for tag, (calls, cost) in out.items()}


def test_0018_fills_the_tags_six_hour_rows_so_a_kolkata_report_by_tag_reads_three_hours_at_most(
    previous: Engine,
) -> None:
    """0017 -> 0018: the six-hour tag rows filled from the tagged calls; a report by tag over Kolkata days (ends
    at 18:30 UTC, now snapped to 18:00) equals the raw calls; back down to 0017, the rows are gone."""
    upgrade_database(previous)
    _migrate(previous, "0017_tag_rollups", down=True)
    six_hours = text("SELECT count(*) FROM usage_entity_rollups WHERE dimension = 'tag' AND grain = 21600")
    with previous.connect() as conn:
        assert conn.execute(six_hours).scalar_one() == 0
    assert not check_rollups(previous).matches  # this code keeps six-hour tag rows: 0017 has none
    upgrade_database(previous)
    with previous.connect() as conn:
        assert conn.execute(six_hours).scalar_one() > 100
    assert check_rollups(previous).matches
    for first, last in ((date(2026, 11, 2), date(2026, 11, 18)), (date(2026, 11, 5), date(2026, 11, 5))):
        start, end = local_midnight(first, KOLKATA), local_midnight(last + timedelta(days=1), KOLKATA)
        rows = reports.breakdown(previous, start, end, "tag")
        assert {r.key: (r.totals.calls, r.totals.cost_total) for r in rows} == _by_tag(previous, start, end)
        buckets, raw = reports.entity_pieces([(0, start, end)], TAG_GRAINS)
        assert all(abs((b - a).total_seconds()) <= 3 * 3600 for _label, _sign, a, b in raw)  # 30 min a side
        assert any(grain == 21600 for _label, grain, _bucket in buckets)
    _migrate(previous, "0017_tag_rollups", down=True)
    with previous.connect() as conn:
        assert conn.execute(six_hours).scalar_one() == 0
