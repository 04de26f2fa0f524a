"""``report --by tag``, ``--tag`` (repeatable, all must match) and the provider/model/user/project filters."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from core.cli.main import main
from core.recording.calls import make_call, record_batch


def _report(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["report", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def tagged(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", db_url)
    at = "2026-11-10T12:00:00Z"
    calls = [
        make_call("openai", "gpt-4o", 1_000_000, 0, timestamp=at, user="alice", tags=["feature:summarize", "env:prod"]),
        make_call("openai", "gpt-4o-mini", 1_000_000, 0, timestamp=at, user="bob", tags=["feature:summarize"]),
        make_call("anthropic", "claude-sonnet-4-5", 1_000, 0, timestamp=at, project="acme", tags=["env:prod"]),
        make_call("openai", "gpt-4o", 1_000, 0, timestamp=at),  # untagged
    ]
    record_batch(engine, calls)
    return engine


def test_report_by_tag_rows_overlap_total_counts_once(tagged: Engine, capsys: pytest.CaptureFixture) -> None:
    out = _report(capsys, "--by", "tag", "--since", "2026-11-01", "--until", "2026-11-30")
    assert out["rows_overlap"] is True and out["calls"] == 4
    rows = {row["tag"]: row for row in out["rows"]}
    assert set(rows) == {"feature:summarize", "env:prod"}  # the untagged call has no row
    assert rows["feature:summarize"]["calls"] == 2 and rows["env:prod"]["calls"] == 2
    plain = _report(capsys, "--by", "provider", "--since", "2026-11-01", "--until", "2026-11-30")
    assert plain["rows_overlap"] is False and plain["cost_total"] == out["cost_total"]
    assert main(["report", "--by", "tag", "--since", "2026-11-01", "--until", "2026-11-30"]) == 0
    assert "the rows overlap" in capsys.readouterr().out


def test_tag_filters_all_must_match_and_column_filters(tagged: Engine, capsys: pytest.CaptureFixture) -> None:
    both = _report(capsys, "--tag", "feature:summarize", "--tag", "env:prod", "--by", "model")
    assert both["calls"] == 1 and [r["model"] for r in both["rows"]] == ["gpt-4o"]
    assert both["filters"] == {"tag": ["feature:summarize", "env:prod"]}
    one = _report(capsys, "--tag", "env:prod", "--by", "provider")
    assert one["calls"] == 2 and {r["provider"] for r in one["rows"]} == {"openai", "anthropic"}
    assert _report(capsys, "--tag", "env:prod", "--provider", "anthropic")["calls"] == 1
    assert _report(capsys, "--user", "bob")["calls"] == 1
    assert _report(capsys, "--project", "acme", "--by", "tag")["rows"][0]["tag"] == "env:prod"
    assert _report(capsys, "--model", "gpt-4o")["calls"] == 2
    assert _report(capsys, "--tag", "ENV:PROD")["calls"] == 0  # case-sensitive


@pytest.mark.parametrize(
    "args, message",
    [(["--tag", ""], "--tag[0]: empty tag"), (["--tag", "x" * 101], "--tag[0]: at most 100 characters")],
)
def test_bad_tag_filter(tagged: Engine, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
