"""``python -m core`` end to end, as a user runs it: exit codes, JSON keys, one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit_server import isolated_env

from core.storage.engine import make_engine
from core.storage.tables import PriceVersion, UsageRecord

REPO = Path(__file__).resolve().parents[2]
COST_KEYS = {
    "provider",
    "model",
    "matched_by",
    "pricing_id",
    "input_tokens",
    "output_tokens",
    "input_token_cost",
    "output_token_cost",
    "cost_input",
    "cost_output",
    "cost_total",
}


def run(db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m core`` with a clean environment, in a folder of its own: no user ``.env`` or setting."""
    full_env = isolated_env({"DATABASE_URL": db_url, **(env or {})})
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, "-m", "core", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=60
        )


def count(db_url: str, model: type) -> int:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return int(n)


def test_init_then_seed_example_costs_a_quarter_cent(db_url: str) -> None:
    first = run(db_url, "init")
    assert first.returncode == 0 and "added" in first.stdout
    assert "admin password for editing prices (shown once" in first.stdout
    second = run(db_url, "init")
    assert second.returncode == 0 and "nothing to change" in second.stdout
    assert "password" not in second.stdout
    out = run(
        db_url,
        "cost",
        "--provider",
        "huggingface",
        "--model",
        "openai/gpt-oss-120b:groq",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert COST_KEYS <= set(data)
    assert (data["cost_total"], data["matched_by"]) == ("0.0025", "exact")
    assert (data["cost_input"], data["cost_output"]) == ("0.001", "0.0015")


def test_record_verify_and_report(db_url: str) -> None:
    run(db_url, "init")
    args = [
        "record",
        "--provider",
        "huggingface",
        "--model",
        "openai/gpt-oss-120b:groq",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--user",
        "alice",
        "--request-id",
        "req-42",
        "--at",
        "2025-06-30T10:00:00Z",
        "--json",
    ]
    rec = run(db_url, *args)
    assert rec.returncode == 0, rec.stderr
    data = json.loads(rec.stdout)
    assert (COST_KEYS | {"id", "request_id"}) <= set(data)
    assert (data["cost_total"], data["request_id"]) == ("0.0025", "req-42")
    again = json.loads(run(db_url, *args).stdout)
    assert (again["id"], again["duplicate"]) == (data["id"], True)
    assert count(db_url, UsageRecord) == 1
    ver = json.loads(run(db_url, "verify", str(data["id"]), "--json").stdout)
    assert {"id", "stored_cost_total", "cost_total_at_its_time", "cost_total_today", "matches"} <= set(ver)
    assert ver["matches"] is True and ver["stored_cost_total"] == "0.0025"
    rep = json.loads(run(db_url, "report", "--by", "user", "--json").stdout)
    assert rep["cost_total"] == "0.0025" and rep["rows"][0]["user"] == "alice"
    day = json.loads(
        run(
            db_url,
            "report",
            "--by",
            "day",
            "--since",
            "2025-06-30",
            "--until",
            "2025-06-30",
            "--tz",
            "Asia/Kathmandu",
            "--json",
        ).stdout
    )
    assert [r["day"] for r in day["rows"]] == ["2025-06-30"] and day["calls"] == 1


def test_import_takes_good_rows_and_names_bad_lines(db_url: str, tmp_path: Path) -> None:
    run(db_url, "init")
    path = tmp_path / "calls.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"timestamp": "2025-06-30T10:00:00Z", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,'
                ' "output_tokens": 100, "request_id": "a"}',
                '{"timestamp": "2025-06-30T10:00:00Z", "provider": "openai", "model": "gpt-4o", "input_tokens": -3,'
                ' "output_tokens": 100}',
                "{not json",
                '{"timestamp": "2025-06-30T11:00:00", "provider": "groq", "model": "openai/gpt-oss-120b",'
                ' "input_tokens": 10, "output_tokens": 10, "user": "bob"}',
            ]
        )
        + "\n"
    )
    out = run(db_url, "import", str(path))
    assert out.returncode == 1, out.stderr  # some rows refused: exit 1, with the counts
    assert "2 rows taken" in out.stdout and "2 refused" in out.stdout
    assert "line 2: input_tokens: -3 is negative" in out.stderr
    assert "line 3: broken JSON" in out.stderr
    assert count(db_url, UsageRecord) == 2
    rerun = run(db_url, "import", str(path))
    assert "0 rows taken, 2 already recorded" in rerun.stdout
    assert count(db_url, UsageRecord) == 2


def test_demo_then_report_totals_match_rebuild(db_url: str) -> None:
    assert run(db_url, "demo", "--days", "7", "--rows", "500").returncode == 0
    assert count(db_url, UsageRecord) == 500
    rebuilt = run(db_url, "rebuild-rollups", "--json")
    assert rebuilt.returncode == 0 and json.loads(rebuilt.stdout)["matches"] is True
    rep = json.loads(run(db_url, "report", "--by", "provider", "--json").stdout)
    assert rep["calls"] == 500 and rep["cost_total"] == json.loads(rebuilt.stdout)["cost_total"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cost", "--provider", "x", "--model", "y", "--input-tokens", "-1", "--output-tokens", "1"], "--input-tokens"),
        (["cost", "--provider", "x", "--model", "y", "--input-tokens", "1.5", "--output-tokens", "1"], "1.5"),
        (["cost", "--provider", "x", "--model", "y", "--input-tokens", "ten", "--output-tokens", "1"], "ten"),
        (
            ["cost", "--provider", "x", "--model", "y", "--input-tokens", "1", "--output-tokens", "1", "--at", "soon"],
            "--at",
        ),
        (
            ["cost", "--provider", "x", "--model", "y", "--input-tokens", "1", "--output-tokens", "1", "--fast"],
            "--fast",
        ),
        (["report", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["report", "--since", "2025-13-01"], "--since"),
        (["verify", "999"], "999"),
        (["import", "/no/such/file.jsonl"], "/no/such/file.jsonl"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(db_url: str, args: list[str], expected: str) -> None:
    run(db_url, "init")
    before = (count(db_url, UsageRecord), count(db_url, PriceVersion))
    out = run(db_url, *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert (count(db_url, UsageRecord), count(db_url, PriceVersion)) == before


def test_bad_environment_value_exits_2_naming_it(db_url: str) -> None:
    out = run(db_url, "init", env={"HUGGINGFACE_INPUT_TOKEN_COST": "-0.5"})
    assert out.returncode == 2
    assert "HUGGINGFACE_INPUT_TOKEN_COST" in out.stderr and "-0.5" in out.stderr
    assert count(db_url, PriceVersion) == 0


def test_reset_admin_password_prints_a_new_one_that_signs_in(db_url: str) -> None:
    from core.admin.password import SignInRefused, sign_in

    out = run(db_url, "reset-admin-password")
    assert out.returncode == 0, out.stderr
    password = out.stdout.strip().rsplit(" ", 1)[-1]
    engine = make_engine(db_url)
    assert sign_in(engine, password) > 0
    with pytest.raises(SignInRefused):
        sign_in(engine, password + "x")
    engine.dispose()
    refused = run(db_url, "reset-admin-password", env={"SPENDBOARD_ADMIN_PASSWORD": "set-elsewhere"})
    assert refused.returncode == 2 and "SPENDBOARD_ADMIN_PASSWORD" in refused.stderr
    assert "set-elsewhere" not in refused.stderr
