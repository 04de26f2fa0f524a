"""Migration 0014_key_scopes on a database at the previous revision (0013): every key kept, as an ``ingest`` key."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine, inspect, select

from core.ingest.keys import allows, authenticate, create_key, hash_key, require_scope
from core.recording.calls import make_call, record_batch
from core.reporting.usage_figures import usage_figures
from core.storage.key_tables import ApiKey

MIGRATION = Path(__file__).resolve().parents[2] / "core" / "storage" / "migrations" / "versions" / "0014_key_scopes.py"
OLD_KEY = "sb_abcdefghij_" + "x" * 43


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0014_key_scopes", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(engine: Engine, step: str) -> None:
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            getattr(_migration(), step)()


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("api_keys")}


def _indexes(engine: Engine) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("api_usage_logs")}


def test_a_release2_key_keeps_working_as_an_ingest_key_after_the_upgrade(engine: Engine) -> None:
    module = _migration()
    assert (module.revision, module.down_revision) == ("0014_key_scopes", "0013_anomalies")
    _run(engine, "downgrade")  # the schema of the previous head: no scope, no errors index
    try:
        assert "scope" not in _columns(engine) and "ix_usage_errors" not in _indexes(engine)
        now = datetime.now(UTC)
        table = ApiKey.__table__
        with engine.begin() as conn:  # a key as release 2 stored it (no scope column to fill)
            conn.execute(
                table.insert().values(
                    name="old sender", prefix="sb_abcdefghij", key_hash=hash_key(OLD_KEY), project="p", created_at=now
                )
            )
        record_batch(
            engine,
            [
                make_call("openai", "gpt-4o", 10, 5, status="error", request_id="e1"),
                make_call("openai", "gpt-4o", 10, 5, request_id="o1"),
            ],
        )
        _run(engine, "upgrade")
        assert "scope" in _columns(engine) and "ix_usage_errors" in _indexes(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.name, table.c.project, table.c.scope)).all()
        assert [tuple(r) for r in rows] == [("old sender", "p", "ingest")]
        key = authenticate(engine, OLD_KEY)
        assert key is not None and key.scope == "ingest" and key.project == "p"
        require_scope(key, "ingest")
        assert not allows(key.scope, "read") and not allows(key.scope, "check")
        assert create_key(engine, "reader", scope="read").info.scope == "read"
        figures, _unpriced = usage_figures(engine)  # the errors index serves the status label
        assert sorted((f.status, f.calls) for f in figures) == [("error", 1), ("ok", 1)]
    finally:
        if "scope" not in _columns(engine):
            _run(engine, "upgrade")  # the shared PostgreSQL schema stays whole for later tests
