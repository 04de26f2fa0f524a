"""``import``: plural-aware counts, duplicates named by line, conflicting ids refused, ``--strict`` all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.cli.main import main
from core.pricing.seeding import initialize_default_pricing
from core.storage.engine import make_engine
from core.storage.tables import UsageRecord


def _row(request_id: str | None = None, tokens: int = 100, **extra: object) -> str:
    row: dict[str, object] = {
        "timestamp": "2025-06-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": tokens,
        "output_tokens": 10,
        **extra,
    }
    if request_id is not None:
        row["request_id"] = request_id
    return json.dumps(row)


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    engine = make_engine(db_url)
    initialize_default_pricing(engine)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def _calls(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    engine.dispose()
    return int(n)


def _import(tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = main(["import", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_row_is_counted_in_the_singular(cli_db: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _import(tmp_path, [_row("a")], capsys)
    assert code == 0 and out.startswith("1 row taken, 0 already recorded, 0 refused"), out


def test_duplicates_are_named_by_line(cli_db: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lines = [_row("a"), _row(None, tokens=7), _row("a")]  # line 3 repeats line 1 exactly
    code, out, err = _import(tmp_path, lines, capsys)
    assert code == 0 and "2 rows taken, 1 already recorded, 0 refused" in out
    assert "already recorded, skipped: line 3" in err
    code, out, err = _import(tmp_path, lines, capsys)  # the same file again: every line named
    assert "0 rows taken, 3 already recorded, 0 refused" in out
    assert "already recorded, skipped: lines 1, 2, 3" in err
    assert _calls(cli_db) == 2


def test_a_known_request_id_with_different_content_is_refused_by_line(
    cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _import(tmp_path, [_row("a"), _row("b")], capsys)[0] == 0
    lines = [_row("a"), _row("b", tokens=999), _row("c"), _row("c", tokens=5)]
    code, out, err = _import(tmp_path, lines, capsys)
    assert "1 row taken, 1 already recorded, 2 refused" in out, out
    assert "line 2: request_id 'b' is already recorded with different content" in err
    assert "line 4: request_id 'c' is already used on line 3 with different content" in err
    assert "already recorded, skipped: line 1" in err
    assert _calls(cli_db) == 3


def test_strict_is_all_or_nothing(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [_row("a"), _row("b"), _row("c", tokens=-1), _row("d")]
    code, out, err = _import(tmp_path, lines, capsys, "--strict")
    assert code == 1
    assert "nothing written (--strict): 1 row refused, 3 rows good" in out, out
    assert "line 3: input_tokens" in err
    assert _calls(cli_db) == 0
    code, out, _ = _import(tmp_path, [_row("a"), _row("b")], capsys, "--strict")
    assert code == 0 and "2 rows taken" in out and _calls(cli_db) == 2
    code, out, err = _import(tmp_path, [_row("e"), _row("a", tokens=3)], capsys, "--strict")
    assert code == 1 and "line 2: request_id 'a' is already recorded with different content" in err
    assert _calls(cli_db) == 2
