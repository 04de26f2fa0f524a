"""Migration 0003_api_keys on a database with the previous schema: the tables it makes match the models."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Engine, String, inspect, text

from core.ingest.keys import authenticate, create_key
from core.ingest.rejections import Refusal, keep_refusals, rejection_summary
from core.storage.key_tables import ApiKey, RejectedIngestion
from core.storage.tables import Base

MIGRATION = Path(__file__).resolve().parents[2] / "core" / "storage" / "migrations" / "versions" / "0003_api_keys.py"
NEW = [ApiKey.__table__, RejectedIngestion.__table__]


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0003_api_keys", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(engine: Engine, step: str) -> None:
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            getattr(_migration(), step)()


def _add_later_columns(engine: Engine) -> None:
    """What later migrations add to these tables (0014: the key's scope), so today's code can use them."""
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)) as op:
            with op.batch_alter_table("api_keys") as batch:
                batch.add_column(Column("scope", String(10), nullable=False, server_default=text("'ingest'")))


LATER_COLUMNS = {"api_keys": {"scope"}}


def _shape(engine: Engine) -> dict[str, dict[str, tuple[str, bool]]]:
    found = inspect(engine)
    return {
        t.name: {c["name"]: (type(c["type"]).__name__, c["nullable"]) for c in found.get_columns(t.name)} for t in NEW
    }


def test_upgrade_matches_models_and_downgrade_drops(engine: Engine) -> None:
    assert _migration().down_revision == "0002_whole_bill" and _migration().revision == "0003_api_keys"
    expected = _shape(engine)  # made by create_all from the models, less what later migrations add
    for table, names in LATER_COLUMNS.items():
        for name in names:
            expected[table].pop(name)
    Base.metadata.drop_all(engine, tables=NEW)  # the schema of 0002: everything but this migration's tables
    assert not set(inspect(engine).get_table_names()) & {"api_keys", "rejected_ingestions"}
    _run(engine, "upgrade")
    try:
        assert _shape(engine) == expected
        indexes = {i["name"] for i in inspect(engine).get_indexes("rejected_ingestions")}
        assert "ix_rejected_at" in indexes
        _add_later_columns(engine)
        made = create_key(engine, "migrated", project="p")
        assert authenticate(engine, made.key) is not None
        keep_refusals(engine, "/api/v1/calls", "migrated", [Refusal("model: missing", "{}")])
        assert rejection_summary(engine)[0].count == 1
        _run(engine, "downgrade")
        assert not set(inspect(engine).get_table_names()) & {"api_keys", "rejected_ingestions"}
    finally:
        Base.metadata.create_all(engine, tables=NEW)  # the shared PostgreSQL schema stays whole for later tests
