"""Commands never write Spendboard's schema where it does not belong (issue 22, point 1).

Read-only commands refuse a database without Spendboard's tables and create nothing; commands
that write create the schema only in an empty database; a SQLite path whose folder does not
exist is refused by every command but ``init``, which creates it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from core.cli.main import main

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=BACKENDS)
def foreign_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding another application's table and none of Spendboard's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'other_app.db'}"
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        engine.dispose()
        yield url
        return
    assert PG_URL
    schema = f"sb_foreign_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE TABLE "{schema}".customers (id integer PRIMARY KEY, name text)'))
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


RECORD = ["record", "--provider", "huggingface", "--model", "m", "--input-tokens", "10", "--output-tokens", "5"]


@pytest.mark.parametrize(
    "command",
    [["report"], ["report", "--by", "model", "--json"], ["verify", "1"], ["budgets", "list"], ["prices", "list"]],
)
def test_read_only_commands_refuse_a_foreign_database_and_write_nothing(
    foreign_url: str, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", foreign_url)
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "has no Spendboard tables (it holds customers)" in err and "python -m core init" in err, err
    assert tables(foreign_url) == {"customers"}


@pytest.mark.parametrize("command", [RECORD, ["init"], ["keys", "create", "--name", "k"]])
def test_commands_that_write_never_create_the_schema_beside_other_tables(
    foreign_url: str, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", foreign_url)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "holds other tables (customers) and none of Spendboard's" in err, err
    assert tables(foreign_url) == {"customers"}


@pytest.mark.parametrize("command", [["report"], RECORD, ["budgets", "list"], ["import", "calls.jsonl"]])
def test_a_misspelt_sqlite_folder_is_refused_by_every_command_but_init(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "dtaa" / "spendboard.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"the folder {missing.parent} of sqlite:///{missing} does not exist" in err, err
    assert "python -m core init" in err
    assert not missing.parent.exists()
    assert main(["init"]) == 0
    assert missing.exists()


def test_a_read_only_command_on_a_missing_sqlite_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "spendbaord.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    assert main(["report"]) == 2
    assert f"there is no database at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_a_writer_makes_the_schema_in_an_empty_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    assert main(RECORD) == 0
    assert "api_usage_logs" in tables(f"sqlite:///{tmp_path / 'new.db'}")
    assert main(["report"]) == 0
