"""A corpus of bad input: each case gets one message naming the field and the value, and nothing is written.

CLI cases run ``core.cli.main`` in-process (the code ``python -m core`` runs); a few
run the real command to prove the exit code and the single stderr line end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.cli.main import main
from core.pricing.edits import PriceEdit, save_price, validate_edit
from core.pricing.seeding import initialize_default_pricing
from core.pricing.versions import PriceEditError
from core.recording.importer import import_file
from core.storage.engine import make_engine
from core.storage.migrate import create_tables
from core.storage.tables import PriceVersion, UsageRecord

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 7, 1, tzinfo=UTC)


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --- environment values: refused by init and cost before the database is touched ---------------

ENV_CASES = [
    ("HUGGINGFACE_INPUT_TOKEN_COST", "abc", "is not a number"),
    ("HUGGINGFACE_INPUT_TOKEN_COST", "-0.000001", "is negative"),
    ("HUGGINGFACE_INPUT_TOKEN_COST", "NaN", "is not a finite number"),
    ("HUGGINGFACE_OUTPUT_TOKEN_COST", "inf", "is not a finite number"),
    ("HUGGINGFACE_OUTPUT_TOKEN_COST", "-Infinity", "is not a finite number"),
    ("HUGGINGFACE_OUTPUT_TOKEN_COST", "1e30", "above the sane maximum"),
    ("HUGGINGFACE_INPUT_TOKEN_COST", "0.0000000000001", "more than 12 decimal places"),
    ("HUGGINGFACE_INPUT_TOKEN_COST", "0x10", "is not a number"),
    ("OPENAI_INPUT_TOKEN_COST", "three", "is not a number"),
    ("GROQ_OUTPUT_TOKEN_COST", "-1", "is negative"),
]


@pytest.mark.parametrize("command", ["init", "cost"])
@pytest.mark.parametrize(("name", "value", "why"), ENV_CASES)
def test_bad_environment_value_is_named_and_nothing_is_written(
    command: str, name: str, value: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    database = tmp_path / "env.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv(name, value)
    if name.startswith("OPENAI_"):  # the pair must be complete for the value itself to be checked
        monkeypatch.setenv("OPENAI_OUTPUT_TOKEN_COST", "0.00001")
    if name.startswith("GROQ_"):
        monkeypatch.setenv("GROQ_INPUT_TOKEN_COST", "0.00001")
    argv = ["init"] if command == "init" else ["cost", "--provider", "huggingface", "--model", "x"]
    argv += [] if command == "init" else ["--input-tokens", "1", "--output-tokens", "1"]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line(err, name, repr(value), why)
    assert not database.exists(), "the database was touched although a setting was refused"


def test_half_set_provider_pair_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("GROQ_INPUT_TOKEN_COST", "0.000001")
    code, _, err = run_cli(["init"], capsys)
    assert code == 2
    assert_one_line(err, "GROQ_OUTPUT_TOKEN_COST", "unset")
    assert not (tmp_path / "x.db").exists()


def test_bad_database_url_is_named(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", "spendboard.db")
    code, _, err = run_cli(["init"], capsys)
    assert code == 2
    assert_one_line(err, "DATABASE_URL", "'spendboard.db'")


def test_bad_import_batch_setting_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / "calls.jsonl").write_text("")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("SPENDBOARD_IMPORT_BATCH", "-5")
    code, _, err = run_cli(["import", str(tmp_path / "calls.jsonl")], capsys)
    assert code == 2
    assert_one_line(err, "SPENDBOARD_IMPORT_BATCH", "'-5'")


def test_real_process_exits_2_with_one_line(tmp_path: Path) -> None:
    """End to end: the real ``python -m core init`` with a bad variable."""
    database = tmp_path / "real.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "HUGGINGFACE_INPUT_TOKEN_COST": "NaN"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "core", "init"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: HUGGINGFACE_INPUT_TOKEN_COST: 'NaN' is not a finite number (USD per token)"
    ]
    assert not database.exists()


# --- command-line arguments: exit 2, one line, no row recorded ------------------------------------

CALL = ["--provider", "openai", "--model", "gpt-4o"]
CLI_CASES = [
    (["record", *CALL, "--input-tokens", "-5", "--output-tokens", "1"], ["--input-tokens", "-5", "negative"]),
    (["record", *CALL, "--input-tokens", "1.5", "--output-tokens", "1"], ["--input-tokens", "'1.5'"]),
    (["record", *CALL, "--input-tokens", "abc", "--output-tokens", "1"], ["--input-tokens", "'abc'"]),
    (["record", *CALL, "--input-tokens", "1e3", "--output-tokens", "1"], ["--input-tokens", "'1e3'"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "-1"], ["--output-tokens", "-1"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "10000000000000"], ["--output-tokens", "limit"]),
    (
        ["record", *CALL, "--input-tokens", "5", "--output-tokens", "1", "--cached-input-tokens", "9"],
        ["cached_input_tokens", "9"],
    ),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--bogus"], ["unrecognized", "--bogus"]),
    (["record", *CALL, "--input-tokens", "1"], ["--output-tokens"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--at", "2025-02-30"], ["--at", "'2025-02-30'"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--at", "yesterday"], ["--at", "'yesterday'"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--at", "1999-12-31"], ["--at", "2000"]),
    (["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--at", "2999-01-01"], ["--at", "future"]),
    (["record", "--provider", "", "--model", "m", "--input-tokens", "1", "--output-tokens", "1"], ["provider"]),
    (["record", "--provider", "p", "--model", "m" * 400, "--input-tokens", "1", "--output-tokens", "1"], ["model"]),
    (
        ["record", *CALL, "--input-tokens", "1", "--output-tokens", "1", "--user", "a\x01b"],
        ["user", "control characters"],
    ),
    (["cost", *CALL, "--input-tokens", "x", "--output-tokens", "1"], ["--input-tokens", "'x'"]),
    (["report", "--tz", "Mars/Base"], ["--tz", "'Mars/Base'"]),
    (["report", "--since", "2025-13-01"], ["--since", "'2025-13-01'"]),
    (["report", "--since", "2025-02-30"], ["--since", "'2025-02-30'"]),
    (["report", "--since", "2025-03-01", "--until", "2025-02-01"], ["--until", "2025-02-01"]),
    (["report", "--by", "planet"], ["--by", "'planet'"]),
    (["reprice", "--only-estimated", "--since", "nope"], ["--since", "'nope'"]),
    (["verify", "0"], ["LOG_ID", "'0'"]),
    (["verify", "abc"], ["LOG_ID", "'abc'"]),
    (["verify", "999"], ["LOG_ID", "999"]),
    (["demo", "--rows", "0"], ["--rows", "'0'"]),
    (["demo", "--days", "-3"], ["--days"]),
    (["frobnicate"], ["'frobnicate'"]),
    (["import", "/nonexistent/calls.csv"], ["FILE", "/nonexistent/calls.csv"]),
]


@pytest.mark.parametrize(("argv", "needles"), CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_bad_argument_is_named_and_nothing_is_recorded(
    argv: list[str], needles: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = make_engine(url)
    create_tables(engine)
    initialize_default_pricing(engine)
    prices_before = count(engine, PriceVersion)
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (out, err)
    assert_one_line(err, *needles)
    assert count(engine, UsageRecord) == 0
    assert count(engine, PriceVersion) == prices_before
    engine.dispose()


# --- import rows: each bad row named by line, field and value; the good rows are taken -------------

GOOD = {"timestamp": "2025-06-01T10:00:00Z", "provider": "openai", "model": "gpt-4o", "input_tokens": 10}
GOOD["output_tokens"] = 5
MISSING = object()


def row(**changes: object) -> bytes:
    values = {**GOOD, **changes}
    return json.dumps({k: v for k, v in values.items() if v is not MISSING}).encode()


ROW_CASES = [
    ("missing provider", row(provider=MISSING), ["provider", "missing"]),
    ("missing timestamp", row(timestamp=MISSING), ["timestamp", "missing"]),
    ("null output", row(output_tokens=None), ["output_tokens", "None"]),
    ("empty model", row(model=""), ["model", "''"]),
    ("blank model", row(model="   "), ["model", "empty"]),
    ("tokens as text", row(input_tokens="ten"), ["input_tokens", "'ten'"]),
    ("tokens as bool", row(input_tokens=True), ["input_tokens", "True"]),
    ("tokens fractional", row(input_tokens=1.5), ["input_tokens", "1.5"]),
    ("tokens negative", row(output_tokens=-1), ["output_tokens", "-1"]),
    ("tokens absurd", row(input_tokens=10**13), ["input_tokens", "10000000000000"]),
    ("tokens exponent text", row(input_tokens="1e3"), ["input_tokens", "'1e3'"]),
    ("tokens as list", row(input_tokens=[1]), ["input_tokens", "[1]"]),
    ("tokens superscript", row(input_tokens="\u00b2"), ["input_tokens", "'\u00b2'"]),
    ("tokens arabic digits", row(output_tokens="\u0661\u0662"), ["output_tokens", "'\u0661\u0662'"]),
    (
        "NaN tokens",
        b'{"timestamp": "2025-06-01T10:00:00Z", "provider": "p", "model": "m", '
        b'"input_tokens": NaN, "output_tokens": 1}',
        ["input_tokens", "NaN"],
    ),
    (
        "Infinity tokens",
        b'{"timestamp": "2025-06-01T10:00:00Z", "provider": "p", "model": "m", '
        b'"input_tokens": 1, "output_tokens": Infinity}',
        ["output_tokens", "Infinity"],
    ),
    ("impossible date", row(timestamp="2025-02-30T00:00:00Z"), ["timestamp", "'2025-02-30T00:00:00Z'"]),
    ("not a time", row(timestamp="last tuesday"), ["timestamp", "'last tuesday'"]),
    ("time as number", row(timestamp=1717236000), ["timestamp", "1717236000"]),
    ("time before 2000", row(timestamp="1999-12-31T23:00:00Z"), ["timestamp", "1999"]),
    ("time in the future", row(timestamp="2999-01-01T00:00:00Z"), ["timestamp", "future"]),
    ("provider as number", row(provider=5), ["provider", "5"]),
    ("very long model", row(model="m" * 1000), ["model", "1000 characters"]),
    ("control char user", row(user="a\u0000b"), ["user", "control characters"]),
    ("cached above input", row(cached_input_tokens=50), ["cached_input_tokens", "50"]),
    ("unknown field", row(colour="red"), ["colour"]),
    ("broken JSON", b'{"timestamp": "2025-06-01T10:00:00Z", "provider": ', ["broken JSON", '"provider"']),
    ("JSON list", b"[1, 2]", ["JSON object", "list"]),
    ("non-UTF-8", row(provider="opXenai").replace(b"X", b"\xff"), ["UTF-8", "0xff"]),
]


@pytest.mark.parametrize(("label", "raw", "needles"), ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_import_row_is_named_by_line_and_good_rows_are_taken(
    label: str, raw: bytes, needles: list[str], tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    create_tables(engine)
    path = tmp_path / "calls.jsonl"
    path.write_bytes(row(request_id="good-1") + b"\n" + raw + b"\n" + row(request_id="good-3") + b"\n")
    result = import_file(engine, path, now=NOW)
    assert result.taken == 2
    assert len(result.refused) == 1
    line, reason = result.refused[0]
    assert line == 2
    for needle in needles:
        assert needle in reason, (needle, reason)
    with engine.connect() as conn:
        stored = set(conn.execute(select(UsageRecord.request_id)).scalars())
    assert stored == {"good-1", "good-3"}
    engine.dispose()


def test_csv_with_good_and_bad_rows_lists_the_bad_by_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """Through the CLI: good rows imported, each bad one printed as ``line N: reason``."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'csv.db'}")
    path = tmp_path / "calls.csv"
    path.write_bytes(
        b"timestamp,provider,model,input_tokens,output_tokens,request_id\n"
        b"2025-06-01T10:00:00Z,openai,gpt-4o,10,5,a\n"
        b"2025-06-01T10:00:00Z,openai,gpt-4o,ten,5,b\n"
        b"2025-02-30T10:00:00Z,openai,gpt-4o,10,5,c\n"
        b"2025-06-01T10:00:00Z,,gpt-4o,10,5,d\n"
        b"2025-06-01T10:00:00Z,op\xffenai,gpt-4o,10,5,e\n"
        b"2025-06-01T10:00:00Z,openai,gpt-4o,10,5\n"
        b"2025-06-01T10:00:00Z,openai,gpt-4o,7,3,f\n"
    )
    code, out, err = run_cli(["import", str(path)], capsys)
    assert code == 1  # rows were refused: a script can tell (issue 22, point 16)
    assert "2 rows taken, 0 already recorded, 5 refused" in out
    lines = err.strip().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "input_tokens: 'ten'" in lines[0]
    assert "timestamp: '2025-02-30T10:00:00Z'" in lines[1]
    assert "provider: ''" in lines[2]
    assert "0xff" in lines[3]
    assert "5 columns where the header has 6" in lines[4]


def test_csv_header_with_a_bare_carriage_return_is_refused_whole(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'csv.db'}")
    path = tmp_path / "calls.csv"
    path.write_bytes(b"timestamp,provider\rmodel,input_tokens,output_tokens\n")
    code, _, err = run_cli(["import", str(path)], capsys)
    assert code == 2
    assert_one_line(err, "CSV header", "line 1")


def test_csv_header_without_required_column_is_refused_whole(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'csv.db'}")
    path = tmp_path / "calls.csv"
    path.write_text("timestamp,provider,model,input_tokens\n2025-06-01T10:00:00Z,openai,gpt-4o,10\n")
    code, _, err = run_cli(["import", str(path)], capsys)
    assert code == 2
    assert_one_line(err, "CSV header", "output_tokens")


# --- form fields: the server refuses what any widget might let through ----------------------------

FORM_CASES = [
    ("input_per_1m", dict(input_per_1m="three"), "'three'"),
    ("input_per_1m", dict(input_per_1m="-1"), "'-1'"),
    ("input_per_1m", dict(input_per_1m="NaN"), "'NaN'"),
    ("output_per_1m", dict(output_per_1m="inf"), "'inf'"),
    ("output_per_1m", dict(output_per_1m="1e12"), "'1e12'"),
    ("output_per_1m", dict(output_per_1m=""), "empty"),
    ("input_per_1m", dict(input_per_1m="0.0000001"), "finer than 1e-12"),
    ("cached_input_per_1m", dict(cached_input_per_1m="-0.5"), "'-0.5'"),
    ("cost_per_request", dict(cost_per_request="lots"), "'lots'"),
    ("cost_per_request", dict(cost_per_request="1e9"), "'1e9'"),
    ("provider", dict(provider=""), "empty"),
    ("provider", dict(provider="   "), "empty"),
    ("model", dict(model_name=""), "empty"),
    ("model", dict(model_name="m" * 400), "400 characters"),
    ("changed_by", dict(changed_by=""), "Changed by:"),
    ("input_per_1m", dict(input_per_1m="0.0000000000001"), "more than 6 decimal places per 1M tokens"),
    ("input_per_1m", dict(input_per_1m="-1"), "Input per 1M tokens (USD): '-1'"),
]


@pytest.mark.parametrize(("field", "changes", "needle"), FORM_CASES, ids=[f"{c[0]}-{c[2]}" for c in FORM_CASES])
def test_bad_form_field_is_refused_on_the_server(
    field: str, changes: dict[str, str], needle: str, engine: Engine
) -> None:
    values = dict(provider="openai", model_name="gpt-4o", input_per_1m="2.5", output_per_1m="10")
    values.update(changes)
    edit = PriceEdit(**values)  # type: ignore[arg-type]
    with pytest.raises(PriceEditError) as refused:
        validate_edit(edit)
    assert refused.value.field == field
    assert needle in str(refused.value)
    before = count(engine, PriceVersion)
    with pytest.raises(PriceEditError):
        save_price(engine, edit)
    assert count(engine, PriceVersion) == before


def test_too_fine_price_is_echoed_as_typed() -> None:
    edit = PriceEdit(provider="openai", model_name="gpt-4o", input_per_1m="0.0000001", output_per_1m="10")
    with pytest.raises(PriceEditError, match=r"'0\.0000001'"):
        validate_edit(edit)


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662"])
def test_non_ascii_digits_are_refused_by_name(value: str) -> None:
    from core.pricing.rates import PricingError
    from core.pricing.validation import validate_tokens

    with pytest.raises(PricingError, match="input_tokens: .* is not a whole number"):
        validate_tokens(value, "input_tokens")
