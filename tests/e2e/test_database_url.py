"""A bad DATABASE_URL, an unreachable server, a refused login, a missing database: one line, exit 2 (issue 14.6).

Every command names DATABASE_URL, hides the password, prints no traceback; the dashboard shows
the same as an error message.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit_server import ROOT, free_port, isolated_env

from core.cli.main import main

SECRET = "s3cret-pw"


def _closed_port_url() -> str:
    return f"postgresql+psycopg://spender:{SECRET}@127.0.0.1:{free_port()}/billing"


BAD_URLS = [
    ("foo://x", "is not a supported database URL"),
    ("mysql://u:s3cret-pw@localhost/db", "is not a supported database URL"),
    ("postgresql+asyncpg://u:s3cret-pw@localhost/db", "is not a supported database URL"),
    ("sqlite:////nonexistent-dir-for-sure/\0/x.db", "DATABASE_URL"),
]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["report"],
        ["verify", "1"],
        ["cost", "--provider", "groq", "--model", "m", "--input-tokens", "1", "--output-tokens", "1"],
    ],
)
@pytest.mark.parametrize(("url", "why"), BAD_URLS[:3])
def test_a_bad_url_is_one_line_naming_database_url(
    command: list[str], url: str, why: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(command) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: DATABASE_URL: ") and why in line, line
    assert SECRET not in line


@pytest.mark.parametrize("command", [["init"], ["report"], ["verify", "1"], ["import", "calls.jsonl"]])
def test_an_unreachable_server_is_one_line_with_the_password_hidden(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _closed_port_url()
    monkeypatch.setenv("DATABASE_URL", url)
    Path("calls.jsonl").write_text("")
    assert main(command) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: DATABASE_URL: cannot use postgresql+psycopg://spender:***@127.0.0.1:"), line
    assert SECRET not in line


PG = __import__("os").environ.get("TEST_DATABASE_URL")


@pytest.mark.skipif(not PG, reason="needs TEST_DATABASE_URL (a PostgreSQL server)")
@pytest.mark.parametrize("what", ["role", "database"])
def test_an_unknown_role_or_database_is_one_line(
    what: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import make_url

    assert PG
    real = make_url(PG)
    url = (
        real.set(username="no_such_role_sb", password=SECRET)
        if what == "role"
        else real.set(database="no_such_database_sb")
    )
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    assert main(["init"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: DATABASE_URL: cannot use ") and SECRET not in line, line
    assert ("no_such_role_sb" if what == "role" else "no_such_database_sb") in line


def test_the_real_command_exits_2_without_a_traceback() -> None:
    env = isolated_env({"DATABASE_URL": "foo://x"})
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run(
            [sys.executable, "-m", "core", "init"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert _one_line(done.stderr).startswith("error: DATABASE_URL: 'foo://x' is not a supported database URL")


@pytest.mark.parametrize("url", ["foo://x", "closed"])
def test_the_dashboard_shows_a_bad_database_as_an_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", _closed_port_url() if url == "closed" else url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception, at.exception
    assert at.error and "DATABASE_URL" in at.error[0].value
    assert SECRET not in at.error[0].value
