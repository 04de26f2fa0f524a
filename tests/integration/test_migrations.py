"""Schema migrations: a release-1 database, built from the frozen release-1 schema and filled
as release 1 wrote it, is upgraded in place on SQLite and PostgreSQL, every row and cost kept.

Each test gets a database of its own (a file, or a PostgreSQL schema dropped afterwards),
because these tests make and change tables rather than rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import release1_schema as r1
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_schema import own_schema
from sqlalchemy import Engine, MetaData, func, insert, inspect, select, text
from streamlit.testing.v1 import AppTest

from core.recording.rollups import check_rollups
from core.reporting import aggregates as reports
from core.storage.engine import DatabaseSchemaError, DatabaseTooNewError, make_engine
from core.storage.migrate import create_tables, current_revision, head_revision, upgrade_database
from core.storage.migrations import RELEASE1, alembic_config, all_tables, newest_revision
from core.storage.tables import PriceVersion, Setting, UsageRecord

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE = "9999_from_the_future"


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spendboard.db'}"
        return
    with own_schema("sb_mig") as url:
        yield url


@pytest.fixture
def blank(blank_url: str) -> Iterator[Engine]:
    engine = make_engine(blank_url)
    yield engine
    engine.dispose()


@pytest.fixture
def release1(blank: Engine) -> Engine:
    """A release-1 database as users have it: made by release 1's ``create_all``, no
    migration history, with prices, calls, roll-ups, a correction and settings in it."""
    r1.Base.metadata.create_all(blank)
    _fill_release1(blank)
    return blank


def _price(pid: int, provider: str, model: str, inp: str, out: str, **extra: Any) -> dict[str, Any]:
    row = dict(id=pid, provider=provider, model_name=model, input_token_cost=Decimal(inp))
    row.update(output_token_cost=Decimal(out), cached_input_token_cost=None, cost_per_request=None)
    row.update(currency="USD", effective_from=BEGINNING, retired=False, source="catalog", changed_by=None)
    row.update(note=None, created_at=T0)
    return {**row, **extra}


def _call(cid: int, model: str, inp: int, out: int, cost_in: str, cost_out: str, **extra: Any) -> dict[str, Any]:
    row = dict(id=cid, timestamp=T0, provider="huggingface", model=model, user_id=None, request_id=f"r{cid}")
    row.update(input_tokens=inp, output_tokens=out, cached_input_tokens=0, pricing_id=1, matched_by="exact")
    row.update(cost_input=Decimal(cost_in), cost_output=Decimal(cost_out), recorded_at=T0)
    row["cost_total"] = Decimal(cost_in) + Decimal(cost_out) + Decimal(extra.pop("fee", "0"))
    return {**row, **extra}


MARCH_EDIT = dict(
    effective_from=T0, source="form", changed_by="admin", note="cheaper", cost_per_request=Decimal("0.000000000001")
)
OPENAI_CACHED = dict(
    provider="openai", pricing_id=3, cached_input_tokens=8000, fee="0.000000000001", request_id=None,
    timestamp=datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
)  # fmt: skip
ESTIMATED = dict(
    pricing_id=None, matched_by="estimate", user_id="bob", timestamp=datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
)


def _rollup(grain: int, call: dict[str, Any]) -> dict[str, Any]:
    """The roll-up row release 1 kept for a call alone in its bucket."""
    stamp = int(call["timestamp"].timestamp())
    estimated = call["matched_by"] == "estimate"
    kept = ("provider", "model", "input_tokens", "output_tokens", "cached_input_tokens")
    row = {name: call[name] for name in (*kept, "cost_input", "cost_output", "cost_total")}
    row.update(grain=grain, bucket_start=stamp - stamp % grain, user_id=call["user_id"] or "", calls=1)
    row.update(estimated_calls=int(estimated), estimated_cost=call["cost_total"] if estimated else Decimal(0))
    return row


def _fill_release1(engine: Engine) -> None:
    """Rows written through release 1's own tables (so money and times are stored as it stored them)."""
    seed = "openai/gpt-oss-120b:groq"
    prices = [
        _price(1, "huggingface", seed, "0.000001", "0.000003", source="env"),
        _price(2, "openai", "gpt-4o", "0.0000025", "0.00001", cached_input_token_cost=Decimal("0.00000125")),
        _price(3, "openai", "gpt-4o", "0.000002", "0.000008", **MARCH_EDIT),
        _price(4, "groq", "retired-model", "0.000001", "0.000001", retired=True),
    ]
    calls = [
        _call(1, seed, 1000, 500, "0.001", "0.0015", user_id="alice"),  # the seed example: 0.0025
        _call(2, "gpt-4o", 10_000, 2000, "0.0125", "0.016", **OPENAI_CACHED),
        _call(3, "mystery-model", 123, 45, "0.000123", "0.000045", **ESTIMATED),
    ]
    rollups = [_rollup(grain, call) for grain in (900, 3600, 86400) for call in calls]
    correction = dict(id=1, usage_id=3, old_cost_total=Decimal("0.5"), new_cost_total=Decimal("0.000168"))
    correction.update(old_pricing_id=None, new_pricing_id=None, old_matched_by="estimate", new_matched_by="estimate")
    correction.update(corrected_at=T0, reason="repriced")
    settings = [dict(key="admin_password_hash", value="scrypt$16384$8$1$c2FsdA$aGFzaA"), dict(key="note", value="")]
    tables = r1.Base.metadata.tables
    with engine.begin() as conn:
        conn.execute(insert(tables["api_provider_pricing"]), prices)
        conn.execute(insert(tables["api_usage_logs"]), calls)
        conn.execute(insert(tables["usage_rollups"]), rollups)
        conn.execute(insert(tables["usage_corrections"]), [correction])
        conn.execute(insert(tables["spendboard_settings"]), settings)
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences on, as release 1's inserts did
            for table in ("api_provider_pricing", "api_usage_logs", "usage_corrections"):
                last = f"(SELECT max(id) FROM {table})"  # noqa: S608 - our own table names
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})"))


DERIVED = {"usage_rollups"}  # sums of the logs, re-keyed by 0005 and rebuilt from them: checked by their sums


def _release1_snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every release-1 table that holds data (not the derived roll-ups), release-1 columns only,
    read through release-1 types."""
    with engine.connect() as conn:
        return {
            name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
            for name, table in r1.Base.metadata.tables.items()
            if name not in DERIVED
        }


def _schema_diff(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, env=env, timeout=120)


def test_release1_database_is_upgraded_in_place_keeping_every_row(release1: Engine) -> None:
    before = _release1_snapshot(release1)
    done = upgrade_database(release1)
    assert done == [
        f"found a release-1 database (schema {RELEASE1})",
        f"upgraded the database schema from {RELEASE1} to {head_revision()}, every row kept",
    ]
    assert _release1_snapshot(release1) == before  # every price version, call, cost, roll-up, correction, setting
    assert _revision(release1) == head_revision()
    assert _schema_diff(release1, all_tables()) == []  # exactly the schema of today's models
    with release1.connect() as conn:
        # only the indexes a query uses (0006): none on provider, estimates in a partial one
        indexes = {i["name"]: i for i in inspect(conn).get_indexes("api_usage_logs")}
        assert set(indexes) >= {"ix_usage_time", "ix_usage_model_time", "ix_usage_user_time", "ix_usage_project_time"}
        assert not {"ix_usage_provider_time", "ix_usage_matched_time"} & set(indexes)
        where = indexes["ix_usage_unexact_time"]["dialect_options"]
        assert "exact" in str(where.get("sqlite_where", where.get("postgresql_where")))
        if conn.dialect.name == "postgresql":  # 0007: a ranking of users reads the key's index alone
            key = conn.execute(text("SELECT pg_get_indexdef('usage_entity_rollups_pkey'::regclass)")).scalar_one()
            assert key.endswith("INCLUDE (calls, cost_total)"), key
        calls = conn.execute(select(UsageRecord.__table__).order_by(UsageRecord.id)).all()
        for call in calls:
            assert (call.cache_write_tokens, call.cache_write_1h_tokens, call.reasoning_tokens) == (0, 0, 0)
            assert (call.web_search_calls, call.service_tier, call.status) == (0, "standard", "ok")
            assert (call.cost_web_search, call.cost_request) == (Decimal(0), Decimal(0))
            assert (call.project, call.tier, call.price_service_tier, call.latency_ms) == (None, None, None, None)
        assert calls[1].cost_total == Decimal("0.028500000001")  # pico-dollar exact
        prices = conn.execute(select(PriceVersion.service_tier, PriceVersion.tiers, PriceVersion.match_rule)).all()
        assert set(prices) == {("standard", None, None)}
        password_hash = select(Setting.value).where(Setting.key == "admin_password_hash")
        assert conn.execute(password_hash).scalar_one().startswith("scrypt$")
    assert check_rollups(release1).matches  # the roll-ups, rebuilt in the new layout, equal the raw sums
    # reports read the upgraded roll-ups: the same totals release 1 showed
    total = reports.totals(release1, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert (total.calls, total.input_tokens, total.cached_input_tokens) == (3, 11_123, 8000)
    assert total.cost_total == Decimal("0.0025") + Decimal("0.028500000001") + Decimal("0.000168")
    assert (total.estimated_calls, total.estimated_cost) == (1, Decimal("0.000168"))


def test_init_upgrades_a_release1_database_and_verify_still_matches(release1: Engine, blank_url: str) -> None:
    before = _release1_snapshot(release1)
    first = run_cli(blank_url, "init")
    assert first.returncode == 0, first.stderr
    assert f"upgraded the database schema from {RELEASE1} to {head_revision()}" in first.stdout
    assert "admin password" not in first.stdout  # the release-1 password is kept
    after_first = _release1_snapshot(release1)
    assert after_first["api_usage_logs"] == before["api_usage_logs"]
    assert check_rollups(release1).matches
    assert after_first["usage_corrections"] == before["usage_corrections"]
    assert after_first["api_provider_pricing"][: len(before["api_provider_pricing"])] == before["api_provider_pricing"]
    assert set(before["spendboard_settings"]) <= set(after_first["spendboard_settings"])

    verify = run_cli(blank_url, "verify", "1", "--json")
    assert verify.returncode == 0, verify.stderr
    result = json.loads(verify.stdout)
    assert (result["stored_cost_total"], result["cost_total_at_its_time"]) == ("0.0025", "0.0025")
    assert result["matches"] is True
    assert result["stored_pricing_id"] == 1

    second = run_cli(blank_url, "init")  # init twice: nothing more to do, nothing changed
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "nothing to change: tables and prices are up to date"
    assert _release1_snapshot(release1) == after_first
    assert _revision(release1) == head_revision()


def test_baseline_revision_is_exactly_the_release1_schema(blank: Engine, tmp_path: Path) -> None:
    with blank.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, RELEASE1)
    assert _schema_diff(blank, r1.Base.metadata) == []
    if blank.dialect.name == "sqlite":  # stricter there: the very same CREATE statements
        made = make_engine(f"sqlite:///{tmp_path / 'by_create_all.db'}")
        r1.Base.metadata.create_all(made)
        assert _sqlite_ddl(blank) == _sqlite_ddl(made)
        made.dispose()
    # a database Alembic already manages at an older revision is upgraded from there
    assert upgrade_database(blank) == [
        f"upgraded the database schema from {RELEASE1} to {head_revision()}, every row kept"
    ]
    assert _schema_diff(blank, all_tables()) == []


def _sqlite_ddl(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        return {name: " ".join(sql.split()) for name, sql in rows if name != "alembic_version"}


def test_migrations_alone_make_the_schema_of_the_models(blank: Engine) -> None:
    """Guards a model change made without its migration: every revision from nothing equals create_all."""
    with blank.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert _schema_diff(blank, all_tables()) == []


def test_empty_database_is_made_at_head_in_one_step(blank: Engine) -> None:
    done = upgrade_database(blank)
    assert done[0].startswith("created tables: ")  # every table of every revision (issue 12 adds api_keys, ...)
    assert {"api_provider_pricing", "api_usage_logs"} <= set(done[0].removeprefix("created tables: ").split(", "))
    assert _revision(blank) == head_revision()
    assert _schema_diff(blank, all_tables()) == []
    assert upgrade_database(blank) == []


def test_tables_made_by_create_all_today_are_stamped_not_migrated(blank: Engine) -> None:
    create_tables(blank)  # how tests and development databases are made
    assert upgrade_database(blank) == [f"recorded schema revision {head_revision()} (tables made without migrations)"]
    assert _revision(blank) == head_revision()
    assert _schema_diff(blank, all_tables()) == []


def test_a_database_newer_than_the_code_is_refused(blank: Engine, blank_url: str) -> None:
    create_tables(blank)
    with blank.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": FUTURE})
    with pytest.raises(DatabaseTooNewError, match=FUTURE):
        upgrade_database(blank)
    for args in (["init"], ["report"]):
        out = run_cli(blank_url, *args)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and FUTURE in lines[0] and "upgrade Spendboard" in lines[0], out.stderr
    with blank.connect() as conn:  # nothing written: no prices seeded, the stamp untouched
        assert conn.execute(select(func.count()).select_from(PriceVersion)).scalar_one() == 0
    assert _revision(blank) == FUTURE


def test_two_processes_starting_at_once_migrate_once(release1: Engine, blank_url: str) -> None:
    before = _release1_snapshot(release1)
    engines = [make_engine(blank_url) for _ in range(3)]
    start = threading.Barrier(len(engines))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def starting(engine: Engine) -> None:
        start.wait()
        try:
            results.append(upgrade_database(engine))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=starting, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(len(done) for done in results) == [0, 0, 2]  # one upgraded; the others found it done
    assert _release1_snapshot(release1) == before
    assert _revision(release1) == head_revision()


def test_the_quick_head_check_agrees_with_alembic() -> None:
    """Every command compares the database with ``newest_revision`` (read without Alembic)."""
    assert newest_revision() == head_revision()


def test_tables_without_history_that_match_no_release_are_refused(blank: Engine) -> None:
    """Half a migration done by hand: neither release 1 nor today; stamping it would hide the gap."""
    r1.Base.metadata.create_all(blank)
    with blank.begin() as conn:
        conn.execute(text("ALTER TABLE api_usage_logs ADD COLUMN project VARCHAR(200)"))
    with pytest.raises(DatabaseSchemaError, match="table api_provider_pricing lacks columns cache_write_token_cost"):
        upgrade_database(blank)
    assert _revision(blank) is None


def test_a_failed_upgrade_leaves_the_database_as_it_was(release1: Engine) -> None:
    """The stamp and every step run in one transaction: half an upgrade is never left behind."""
    before = _release1_snapshot(release1)
    with release1.begin() as conn:  # the name 0002 gives its new index, taken: 0002 fails half-way
        conn.execute(text("CREATE INDEX ix_usage_project_time ON spendboard_settings (value)"))
    with pytest.raises(Exception, match="ix_usage_project_time"):
        upgrade_database(release1)
    with release1.connect() as conn:
        assert "project" not in {c["name"] for c in inspect(conn).get_columns("api_usage_logs")}
    assert _revision(release1) is None
    assert _release1_snapshot(release1) == before
    with release1.begin() as conn:
        conn.execute(text("DROP INDEX ix_usage_project_time"))
    assert upgrade_database(release1)[-1].startswith(f"upgraded the database schema from {RELEASE1}")
    assert _release1_snapshot(release1) == before


@pytest.fixture
def app_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "correct horse battery staple")
    return url


def _dashboard() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    return at


def test_the_dashboard_start_upgrades_a_release1_database(app_url: str) -> None:
    engine = make_engine(app_url)
    r1.Base.metadata.create_all(engine)
    _fill_release1(engine)
    before = _release1_snapshot(engine)
    at = _dashboard()
    assert not at.exception, at.exception
    assert _revision(engine) == head_revision()
    assert _release1_snapshot(engine)["api_usage_logs"] == before["api_usage_logs"]
    engine.dispose()


def test_the_dashboard_refuses_a_database_newer_than_the_code(app_url: str) -> None:
    engine = make_engine(app_url)
    create_tables(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": FUTURE})
    engine.dispose()
    at = _dashboard()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert FUTURE in errors and "upgrade Spendboard" in errors
