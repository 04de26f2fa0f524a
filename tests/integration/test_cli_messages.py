"""Command-line wording and lookups a new user trips on (issue 14, points 8 and 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.main import main
from core.recording.calls import make_call, record_usage
from core.storage.engine import make_engine


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["init"]) == 0
    return url


def test_an_argument_error_names_the_option_once(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = ["cost", "--provider", "p", "--model", "m", "--input-tokens", "-5", "--output-tokens", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("--input-tokens") == 1, err
    assert err == "error: python -m core cost: --input-tokens: -5 is negative"
    assert main(["demo", "--days", "x"]) == 2
    assert capsys.readouterr().err.count("--days") == 1


def test_verify_takes_a_request_id_as_well_as_a_log_id(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(cli_db)
    first = record_usage(
        engine, make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, request_id="chatcmpl-7")
    )
    digits = record_usage(engine, make_call("huggingface", "openai/gpt-oss-120b:groq", 10, 5, request_id="424242"))
    engine.dispose()
    capsys.readouterr()
    assert main(["verify", "chatcmpl-7"]) == 0
    out = capsys.readouterr().out
    assert f"log #{first.id} " in out and "the stored cost is right" in out
    assert main(["verify", str(first.id), "--json"]) == 0  # a log id still works
    assert f'"id": {first.id}' in capsys.readouterr().out
    assert main(["verify", "424242", "--json"]) == 0  # all digits, no such log id: the request id
    assert f'"id": {digits.id}' in capsys.readouterr().out
    assert main(["verify", "no-such-request"]) == 2
    err = capsys.readouterr().err
    assert "LOG_ID|REQUEST_ID" in err and "'no-such-request'" in err


def test_init_says_when_the_environment_password_is_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'pw.db'}")
    assert main(["init"]) == 0
    assert "admin password for editing prices (shown once" in capsys.readouterr().out
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "from-dotenv")
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "SPENDBOARD_ADMIN_PASSWORD is set (in the environment or .env) and is the one in use" in out
    assert "the one generated earlier does not work while it is set" in out
    assert "from-dotenv" not in out


def test_the_app_start_says_when_the_environment_password_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.admin.password import bootstrap_admin_password
    from core.storage.migrate import create_tables

    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", "from-dotenv")
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    create_tables(engine)
    assert bootstrap_admin_password(engine) is None  # what the dashboard runs at start
    assert "SPENDBOARD_ADMIN_PASSWORD is set" in capsys.readouterr().out
    engine.dispose()


def test_the_overviews_advice_names_a_command_that_works_as_written(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import re
    import shlex
    from decimal import Decimal

    from core.reporting.aggregates import Totals
    from ui.views import estimate_notice

    notice = estimate_notice(Totals(calls=1, estimated_calls=1, estimated_cost=Decimal("0.0001")))
    assert notice
    command = re.search(r"`(python -m core [^`]+)`", notice)
    assert command, notice
    argv = shlex.split(command.group(1))[3:]
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    assert "estimated calls re-priced" in capsys.readouterr().out
