"""Issue 19, point 7: `import` and `record` name the line or the flag of a value the database cannot take."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.cli.main import main
from core.storage.tables import UsageRecord


def at() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


def row(**change: object) -> dict[str, object]:
    return {"timestamp": at(), "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 5, "output_tokens": 1,
            **change}  # fmt: skip


BAD = [
    row(timestamp="0001-01-01T00:00:00+05:00"),
    row(latency_ms=1e308),
    row(provider="openai", model="o1-pro", input_tokens=10**12),  # priced past the limit of one call
]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def run(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_names_each_bad_line_and_takes_the_good_rows(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calls.jsonl"
    rows = [row(request_id="g1"), *BAD, row(request_id="g2")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run(db_url, monkeypatch, capsys, "import", str(path))
    assert code == 1, err  # rows were refused: exit 1 (issue 22, point 16); the good ones taken
    assert "2 rows taken" in out and "3 refused" in out, out
    lines = [line for line in err.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in lines] == ["line 2", "line 3", "line 4"], err
    assert "timestamp" in lines[0] and "latency_ms" in lines[1] and "cost_total" in lines[2]
    assert "Traceback" not in err and count(engine) == 2


def test_import_strict_refuses_in_its_check_what_the_write_would_refuse(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(row()) + "\n" + json.dumps(BAD[2]) + "\n")
    code, out, err = run(db_url, monkeypatch, capsys, "import", "--strict", str(path))
    assert code == 1 and "nothing written (--strict)" in out, (out, err)
    assert "line 2: cost_total" in err and count(engine) == 0


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--at", "0001-01-01T00:00:00+05:00"], "--at"),
        (["--model", "o1-pro", "--input-tokens", str(10**12)], "cost_total"),
    ],
)
def test_record_exits_2_with_one_line(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    flags: list[str], named: str,
) -> None:  # fmt: skip
    base = {"--provider": "openai", "--model": "gpt-4o-mini", "--input-tokens": "5", "--output-tokens": "1"}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        base[flag] = value
    args = [part for pair in base.items() for part in pair]
    code, out, err = run(db_url, monkeypatch, capsys, "record", *args)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and named in err, err
    assert count(engine) == 0
