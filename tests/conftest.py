"""Shared fixtures: a fresh database per test, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

PostgreSQL tests run in a schema of their own per test session, so parallel runs
on one server do not see each other's rows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

import core.storage.schema  # noqa: F401 - every table on Base.metadata before the PostgreSQL schema is made
from core.pricing.seeding import initialize_default_pricing
from core.storage.engine import make_engine
from core.storage.migrate import create_tables
from core.storage.schema import metadata

ENV_PREFIXES = ("HUGGINGFACE_", "OPENAI_", "GROQ_", "MISTRAL_", "ANTHROPIC_", "GEMINI_", "DEEPSEEK_")
PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No price or database variable leaks in from the machine, and no .env is read from the repo."""
    for name in list(os.environ):
        if name.endswith(("_INPUT_TOKEN_COST", "_OUTPUT_TOKEN_COST")) or name in (
            "DATABASE_URL",
            "SPENDBOARD_ADMIN_PASSWORD",
            "HF_TOKEN",
            "HF_BASE_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    import core.config

    monkeypatch.setattr(core.config, "_dotenv_loaded", False)


@pytest.fixture(autouse=True)
def no_background_threads_left() -> Iterator[None]:
    """A page test runs the app in this process, and the app starts the budget loop and the WAL checkpointer:
    stopped after each test, or the loop would go on judging anomalies in the PostgreSQL schema the next
    tests share (it advanced the anomaly pass's state under a test of back-dated calls)."""
    yield
    from core.budgets.worker import stop_all_workers
    from core.storage.checkpoint import stop_all_checkpointers

    stop_all_workers()
    stop_all_checkpointers()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    schema = f"sb_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate(engine: Engine) -> None:
    """Empty every table. The app's background worker (started by page tests in this process) may be
    reading the same schema: PostgreSQL then picks the TRUNCATE as a deadlock victim; try again."""
    names = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))
    for attempt in range(10):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        except OperationalError as exc:
            if "deadlock" not in str(exc).lower() or attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: str | None) -> str:
    """A URL of an empty database with the tables created (one per backend)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spendboard.db'}"
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
        return url
    assert pg_schema_url is not None
    engine = make_engine(pg_schema_url)
    _truncate(engine)
    engine.dispose()
    return pg_schema_url


@pytest.fixture
def empty_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """A database with the tables and the seeded prices."""
    initialize_default_pricing(empty_engine)
    return empty_engine
