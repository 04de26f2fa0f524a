"""``reconcile fetch|import|report`` on SQLite and PostgreSQL against the Admin API stub.

Calls are recorded at the seeded prices (gpt-4o: USD 10 per 1M output tokens; claude-sonnet-4-5:
USD 15 per 1M output tokens), so every computed amount below is exact and known.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from admin_api_stub import AdminApiStub, anthropic_cost, anthropic_usage, openai_cost, openai_usage
from sqlalchemy import Engine, select

from core.cli.main import main
from core.pricing import providers
from core.reconcile.files import read_pages
from core.reconcile.report import reconcile
from core.reconcile.store import store_fetched
from core.recording.calls import make_call, record_batch
from core.storage import schema  # noqa: F401 - every table on the metadata the session schema is made from
from core.storage.reconcile_tables import BilledCost, BilledUsage, ReconciledDay

NOV = {n: date(2026, 11, n) for n in range(1, 10)}
ADMIN_VARIABLES = ("OPENAI_ADMIN_KEY", "OPENAI_ADMIN_BASE_URL", "ANTHROPIC_ADMIN_KEY", "ANTHROPIC_ADMIN_BASE_URL")


@pytest.fixture
def cli(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The seeded database, as the command line's ``DATABASE_URL``; no admin variable from the machine."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    for name in ADMIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return engine


def calls(engine: Engine, provider: str, model: str, day: date, output_tokens: int, count: int = 1) -> None:
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
    record_batch(
        engine,
        [make_call(provider, model, 0, output_tokens // count, timestamp=at.isoformat()) for _ in range(count)],
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "reconcile", "report", "--json", *argv)
    assert err == "" or code != 2, err
    return code, json.loads(out)


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every stored line of every provider's report (the fetch time left out)."""
    with engine.connect() as conn:
        return {
            "costs": sorted(tuple(r) for r in conn.execute(select(BilledCost.__table__))),
            "usage": sorted(tuple(r) for r in conn.execute(select(BilledUsage.__table__))),
            "days": sorted(
                tuple(r)
                for r in conn.execute(
                    select(
                        ReconciledDay.provider, ReconciledDay.day, ReconciledDay.cost_known, ReconciledDay.usage_known
                    )
                )
            ),
        }


def openai_stub(**options: Any) -> AdminApiStub:
    """Five days of OpenAI's bill, one of each status (see ``logged_openai_calls``)."""
    return AdminApiStub(
        openai_costs={
            NOV[1]: [openai_cost("gpt-4o-2024-08-06, output", "10.05")],  # 0.5 % above $10.00: match
            NOV[2]: [openai_cost("gpt-4o-2024-08-06, output", "10.00")],  # $5.00 logged: under, tokens short
            NOV[3]: [openai_cost("gpt-4o-2024-08-06, output", "8.00")],  # $10.00 logged: over, tokens agree
            # NOV[4]: fetched and empty, $1.00 logged: not_billed
            NOV[5]: [openai_cost("web search tool calls", "2.50")],  # nothing logged: under
        },
        openai_usage={
            NOV[1]: [openai_usage("gpt-4o-2024-08-06", 0, 1_000_000)],
            NOV[2]: [openai_usage("gpt-4o-2024-08-06", 0, 1_000_000)],
            NOV[3]: [openai_usage("gpt-4o-2024-08-06", 0, 1_000_000)],
        },
        **options,
    )


def logged_openai_calls(engine: Engine) -> None:
    calls(engine, "openai", "gpt-4o", NOV[1], 1_000_000, count=4)  # $10.00
    calls(engine, "openai", "gpt-4o", NOV[2], 500_000)  # $5.00
    calls(engine, "openai", "gpt-4o", NOV[3], 1_000_000)  # $10.00
    calls(engine, "openai", "gpt-4o", NOV[4], 100_000)  # $1.00
    calls(engine, "openai", "gpt-4o", NOV[7], 100_000)  # $1.00 on a day never fetched: no_report


def fetch_openai(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stub: AdminApiStub, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", stub.openai_key)
    monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", stub.openai_url)
    return run(
        capsys,
        "reconcile",
        "fetch",
        "--provider",
        "openai",
        *(argv or ("--since", "2026-11-01", "--until", "2026-11-06")),
    )


def test_the_issue_example_41_25_billed_against_41_2500_computed_is_one_matching_row(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls(cli, "anthropic", "claude-sonnet-4-5", NOV[3], 2_750_000, count=5)  # 2.75M x $15 / 1M = $41.2500
    with AdminApiStub(
        anthropic_costs={NOV[3]: [anthropic_cost("claude-sonnet-4-5", "output_tokens", "4125.00")]}
    ) as stub:
        monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", stub.anthropic_key)
        monkeypatch.setenv("ANTHROPIC_ADMIN_BASE_URL", stub.anthropic_url)
        code, out, err = run(
            capsys,
            "reconcile",
            "fetch",
            "--provider",
            "anthropic",
            "--since",
            "2026-11-03",
            "--until",
            "2026-11-04",
            "--json",
        )
    assert (code, err) == (0, "")
    assert json.loads(out) == {"provider": "anthropic", "days": 1, "lines": 1, "billed_total": "41.25"}
    code, body = report(capsys, "--since", "2026-11-03", "--until", "2026-11-03", "--by", "model")
    assert code == 0
    assert body["rows"] == [
        {
            "provider": "anthropic",
            "day": "2026-11-03",
            "model": "claude-sonnet-4-5",
            "billed": "41.25",
            "computed": "41.25",
            "delta": "0",
            "delta_pct": "0.00",
            "billed_input_tokens": 0,  # usage fetched, nothing for this model
            "billed_output_tokens": 0,
            "logged_input_tokens": 0,
            "logged_output_tokens": 2_750_000,
            "status": "match",
        }
    ]
    assert Decimal(body["rows"][0]["computed"]) == Decimal("41.2500")
    assert body["totals"] == {"billed": "41.25", "computed": "41.25", "delta": "0", "delta_pct": "0.00"}


def test_every_status_per_day_with_exact_amounts_and_totals_of_billed_rows_only(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_openai_calls(cli)
    with openai_stub() as stub:
        code, out, err = fetch_openai(
            capsys, monkeypatch, stub, "--since", "2026-11-01", "--until", "2026-11-06", "--json"
        )
    assert len(stub.requests) == 6  # five days, two buckets a page, both reports: every page followed
    assert (code, err) == (0, "")
    assert json.loads(out) == {"provider": "openai", "days": 5, "lines": 4, "billed_total": "30.55"}

    code, body = report(capsys)
    assert code == 0  # drift alone never fails without --fail-on-drift
    got = {row["day"]: row for row in body["rows"]}
    assert list(got) == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-07"]
    summary = {day: (r["billed"], r["computed"], r["delta"], r["delta_pct"], r["status"]) for day, r in got.items()}
    assert summary == {
        "2026-11-01": ("10.05", "10", "-0.05", "-0.50", "match"),  # -0.4975 % rounded to two places
        "2026-11-02": ("10", "5", "-5", "-50.00", "under"),
        "2026-11-03": ("8", "10", "2", "25.00", "over"),
        "2026-11-04": ("0", "1", "1", None, "not_billed"),
        "2026-11-05": ("2.5", "0", "-2.5", "-100.00", "under"),
        "2026-11-07": (None, "1", None, None, "no_report"),
    }
    assert (got["2026-11-02"]["billed_output_tokens"], got["2026-11-02"]["logged_output_tokens"]) == (
        1_000_000,
        500_000,
    )
    assert got["2026-11-05"]["billed_output_tokens"] == 0  # usage fetched, none that day
    assert got["2026-11-07"]["billed_output_tokens"] is None  # usage never fetched
    assert all("model" not in row for row in body["rows"])
    # no_report rows are not in the totals: 30.55 billed against 26 computed
    assert body["totals"] == {"billed": "30.55", "computed": "26", "delta": "-4.55", "delta_pct": "-14.89"}

    # the text report names the likely cause of each gap
    code, out, _err = run(capsys, "reconcile", "report")
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("openai")}
    assert "fewer tokens logged than billed" in lines["2026-11-02"]
    assert "tokens agree: prices differ" in lines["2026-11-03"]
    assert "did not bill" in lines["2026-11-04"]
    assert "no bill fetched" in lines["2026-11-07"]


def test_by_model_the_dated_id_billed_and_the_alias_logged_meet_in_one_row(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_openai_calls(cli)
    calls(cli, "openai", "gpt-4o-2024-08-06", NOV[1], 100_000)  # $1.00 logged under the dated id
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    code, body = report(capsys, "--since", "2026-11-01", "--until", "2026-11-05", "--by", "model")
    rows = [(r["day"], r["model"], r["billed"], r["computed"], r["status"]) for r in body["rows"]]
    assert rows == [
        ("2026-11-01", "gpt-4o", "10.05", "11", "over"),  # the dated bill line, the alias and the dated calls
        ("2026-11-02", "gpt-4o", "10", "5", "under"),
        ("2026-11-03", "gpt-4o", "8", "10", "over"),
        ("2026-11-04", "gpt-4o", "0", "1", "not_billed"),
        ("2026-11-05", "web search tool calls", "2.5", "0", "under"),  # priced by the estimate: keeps its name
    ]
    first = body["rows"][0]
    assert (first["billed_output_tokens"], first["logged_output_tokens"]) == (1_000_000, 1_100_000)


def test_fail_on_drift_and_the_tolerance(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_openai_calls(cli)
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    assert report(capsys, "--fail-on-drift")[0] == 1
    code, body = report(capsys, "--fail-on-drift", "--since", "2026-11-01", "--until", "2026-11-01")
    assert (code, [r["status"] for r in body["rows"]]) == (0, ["match"])
    # tolerance 0: USD 0.05 off is drift; 0.4 %: still drift (0.4975 % off); 0.5 %: a match
    assert (
        report(capsys, "--fail-on-drift", "--since", "2026-11-01", "--until", "2026-11-01", "--tolerance", "0")[1][
            "rows"
        ][0]["status"]
        == "under"
    )
    assert (
        report(capsys, "--since", "2026-11-01", "--until", "2026-11-01", "--tolerance", "0.4")[1]["rows"][0]["status"]
        == "under"
    )
    assert (
        report(capsys, "--since", "2026-11-01", "--until", "2026-11-01", "--tolerance", "0.5")[1]["rows"][0]["status"]
        == "match"
    )
    # 60 % covers the day that is 50 % under, not the one that is 100 % under
    code, body = report(capsys, "--tolerance", "60", "--since", "2026-11-02", "--until", "2026-11-05")
    assert [r["status"] for r in body["rows"]] == ["match", "match", "not_billed", "under"]
    # no_report alone is not drift
    assert report(capsys, "--fail-on-drift", "--since", "2026-11-07", "--until", "2026-11-07")[0] == 0


def test_a_refetch_replaces_each_day_it_covers_and_twice_changes_nothing(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
        first = snapshot(cli)
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    assert snapshot(cli) == first  # fetching twice changes nothing
    # the provider corrects Nov 3 and reports Nov 5 empty; only Nov 3 to Nov 5 are fetched again
    corrected = AdminApiStub(
        openai_costs={
            NOV[3]: [openai_cost("gpt-4o-2024-08-06, output", "9.99"), openai_cost("gpt-4o-2024-08-06, input", "0.01")]
        },
    )
    with corrected as stub:
        code, out, _err = fetch_openai(
            capsys, monkeypatch, stub, "--since", "2026-11-03", "--until", "2026-11-06", "--json"
        )
    assert json.loads(out) == {"provider": "openai", "days": 3, "lines": 2, "billed_total": "10"}
    after = snapshot(cli)
    by_day = {}
    for _provider, day, model, token_type, amount in after["costs"]:
        by_day.setdefault(day, []).append((model, token_type, amount))
    assert by_day == {
        NOV[1]: [("gpt-4o-2024-08-06", "output", Decimal("10.05"))],  # untouched
        NOV[2]: [("gpt-4o-2024-08-06", "output", Decimal("10"))],  # untouched
        NOV[3]: [("gpt-4o-2024-08-06", "input", Decimal("0.01")), ("gpt-4o-2024-08-06", "output", Decimal("9.99"))],
        # Nov 5 reported empty now: billed 0
    }
    assert [row for row in after["usage"] if row[1] == NOV[3]] == []  # Nov 3 usage replaced by none
    assert [row for row in after["usage"] if row[1] == NOV[1]] != []
    assert [d[1] for d in after["days"]] == [NOV[n] for n in range(1, 6)]
    code, body = report(capsys, "--since", "2026-11-05", "--until", "2026-11-05")
    assert body["rows"] == []  # billed 0, nothing logged: no row


def test_importing_the_saved_pages_stores_what_the_fetch_stored(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    fetched = snapshot(cli)
    saved = tmp_path / "openai-pages.jsonl"
    saved.write_text("\n".join(stub.pages()) + "\n")
    with cli.begin() as conn:
        for table in (BilledCost, BilledUsage, ReconciledDay):
            conn.execute(table.__table__.delete())
    code, out, err = run(capsys, "reconcile", "import", str(saved), "--provider", "openai", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"provider": "openai", "days": 5, "lines": 4, "billed_total": "30.55"}
    assert snapshot(cli) == fetched
    # an Anthropic file too, pages of both reports in any order
    with AdminApiStub(
        anthropic_costs={NOV[3]: [anthropic_cost("claude-sonnet-4-5-20250929", "output_tokens", "4125.00")]},
        anthropic_usage={NOV[3]: [anthropic_usage("claude-sonnet-4-5-20250929", 100, 2_750_000, cache_read=50)]},
    ) as stub:
        monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", stub.anthropic_key)
        monkeypatch.setenv("ANTHROPIC_ADMIN_BASE_URL", stub.anthropic_url)
        assert (
            run(
                capsys,
                "reconcile",
                "fetch",
                "--provider",
                "anthropic",
                "--since",
                "2026-11-02",
                "--until",
                "2026-11-05",
            )[0]
            == 0
        )
    both = snapshot(cli)
    array = tmp_path / "anthropic.json"
    array.write_text("[" + ",".join(reversed(stub.pages())) + "]")
    with cli.begin() as conn:
        for table in (BilledCost, BilledUsage, ReconciledDay):
            conn.execute(table.__table__.delete().where(table.provider == "anthropic"))
    assert run(capsys, "reconcile", "import", str(array), "--provider", "anthropic")[0] == 0
    assert snapshot(cli) == both
    usage = [row for row in both["usage"] if row[0] == "anthropic"]
    assert [(row[2], row[3], row[4]) for row in usage] == [("claude-sonnet-4-5-20250929", 150, 2_750_000)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REFUSALS = {
    "missing key": ({}, None, r"^error: openai: no admin key \(set OPENAI_ADMIN_KEY\)$"),
    "refused key 401": (
        {"refuse_status": 401},
        "sk-admin-wrong",
        r"^error: openai: key refused \(HTTP 401 from http://127\.0\.0\.1:\d+/v1/organization/costs\)$",
    ),
    "refused key 403": ({"refuse_status": 403}, "sk-admin-wrong", r"^error: openai: key refused \(HTTP 403 from "),
    "no server": (
        {},
        "no server",
        r"^error: openai: server did not answer \(http://127\.0\.0\.1:\d+/v1/organization/costs",
    ),
    "wrong shape on page 2": (
        {"mode": "wrong_shape", "mode_after": 1},
        None,
        r"^error: openai: cost page 2: data\[0\]\.start_time: is missing$",
    ),
    "not json": ({"mode": "not_json"}, None, r"^error: openai: answer from .* is not JSON"),
    "error status": ({"mode": "error", "status": 503}, None, r"^error: openai: HTTP 503 from "),
    "usage fails after costs": (
        {"mode": "error", "mode_after": 3},
        None,
        r"^error: openai: HTTP 500 from .*/usage/completions",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_one_line_exit_2_and_earlier_figures_stay(
    case: str, cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_openai_calls(cli)
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    before = snapshot(cli)
    report_before = report(capsys)[1]
    options, key, message = REFUSALS[case]
    # a corrected bill for the same days, that must not land
    with AdminApiStub(openai_costs={NOV[2]: [openai_cost("gpt-4o-2024-08-06, output", "1")]}, **options) as stub:
        monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", stub.openai_url)
        if key == "no server":
            monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", f"http://127.0.0.1:{_free_port()}/v1")
            monkeypatch.setenv("OPENAI_ADMIN_KEY", stub.openai_key)
        elif case == "missing key":
            monkeypatch.delenv("OPENAI_ADMIN_KEY")
        else:
            monkeypatch.setenv("OPENAI_ADMIN_KEY", key or stub.openai_key)
        code, out, err = run(
            capsys, "reconcile", "fetch", "--provider", "openai", "--since", "2026-11-01", "--until", "2026-11-06"
        )
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err.strip()), err
    assert "sk-admin" not in err
    assert snapshot(cli) == before
    assert report(capsys)[1] == report_before


def test_a_file_that_is_not_report_pages_is_refused_whole(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
        pages = stub.pages()
    before = snapshot(cli)
    bad = tmp_path / "pages.jsonl"
    bad.write_text(pages[0] + "\n" + '{"data": [{"results": "none"}], "has_more": false}\n')
    code, out, err = run(capsys, "reconcile", "import", str(bad), "--provider", "openai")
    assert (code, out) == (2, "")
    assert err.startswith("error: openai: pages.jsonl: line 2: ") and len(err.strip().splitlines()) == 1
    calls_file = tmp_path / "calls.csv"
    calls_file.write_text("provider,model\nopenai,gpt-4o\n")
    code, _out, err = run(capsys, "reconcile", "import", str(calls_file), "--provider", "openai")
    assert code == 2 and err.startswith("error: openai: calls.csv")
    code, _out, err = run(capsys, "reconcile", "import", str(tmp_path / "missing.json"), "--provider", "openai")
    assert code == 2 and err.startswith("error: openai: cannot read missing.json")
    assert snapshot(cli) == before


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["report", "--tolerance", "-1"], "--tolerance: '-1'"),
        (["report", "--tolerance", "abc"], "--tolerance: 'abc'"),
        (["report", "--since", "2026-11-05", "--until", "2026-11-01"], "--until: 2026-11-01 is before --since"),
        (["report", "--since", "yesterday"], "--since: 'yesterday'"),
        (["report", "--provider", "google"], "--provider"),
        (
            ["fetch", "--provider", "openai", "--since", "2026-11-05", "--until", "2026-11-05"],
            "--until: 2026-11-05 is not after",
        ),
        (["fetch", "--provider", "mistral", "--since", "2026-11-05"], "--provider"),
    ],
)
def test_bad_flags_are_named(cli: Engine, capsys: pytest.CaptureFixture[str], argv: list[str], named: str) -> None:
    code, out, err = run(capsys, "reconcile", *argv)
    assert (code, out) == (2, "")
    assert named in err and len(err.strip().splitlines()) == 1


def test_a_bad_base_url_is_named_before_anything_is_sent(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", "sk-ant-admin-x")
    monkeypatch.setenv("ANTHROPIC_ADMIN_BASE_URL", "api.anthropic.com")
    code, _out, err = run(capsys, "reconcile", "fetch", "--provider", "anthropic", "--since", "2026-11-01")
    assert code == 2
    assert (
        err.strip()
        == "error: ANTHROPIC_ADMIN_BASE_URL: 'api.anthropic.com' is not an http(s) URL (e.g. https://api.anthropic.com)"
    )


def test_calls_logged_under_another_name_of_the_provider_count_for_it(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provider aliases (core/pricing/providers.py) count: here ``openai-direct`` is made a name of openai."""
    monkeypatch.setitem(providers.ALIASES, "openai", ("openai-direct",))
    monkeypatch.setitem(providers._CANONICAL, "openai", "openai")
    monkeypatch.setitem(providers._CANONICAL, "openai-direct", "openai")
    calls(cli, "openai", "gpt-4o", NOV[1], 500_000)  # $5.00
    calls(cli, "openai-direct", "gpt-4o-2024-08-06", NOV[1], 500_000)  # $5.00 under the other name and the dated id
    with openai_stub() as stub:
        assert fetch_openai(capsys, monkeypatch, stub)[0] == 0
    for by in ("day", "model"):
        code, body = report(capsys, "--since", "2026-11-01", "--until", "2026-11-01", "--by", by)
        assert [(r["provider"], r["billed"], r["computed"], r["status"]) for r in body["rows"]] == [
            ("openai", "10.05", "10", "match")
        ]
        assert body["rows"][0]["logged_output_tokens"] == 1_000_000


def test_concurrent_stores_of_the_same_days_end_as_one(cli: Engine) -> None:
    """Several fetches of one provider storing at once take turns: no error, the days stored once."""
    with openai_stub() as stub:
        from core.reconcile import openai

        fetched = openai.fetch(NOV[1], NOV[6], api_key=stub.openai_key, base_url=stub.openai_url)
    errors: list[BaseException] = []

    def store() -> None:
        try:
            store_fetched(cli, fetched)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = snapshot(cli)
    assert len(stored["days"]) == 5 and len(stored["costs"]) == 4
    assert reconcile(cli, provider="openai").totals.billed == Decimal("30.55")


def test_a_saved_file_and_a_fetch_of_the_same_days_read_the_same(tmp_path: Path) -> None:
    """The reading side of import equals the fetch for both reports (no database)."""
    with openai_stub() as stub:
        from core.reconcile import openai

        fetched = openai.fetch(NOV[1], NOV[6], api_key=stub.openai_key, base_url=stub.openai_url)
    saved = tmp_path / "p.json"
    saved.write_text("[" + ",".join(stub.pages()) + "]")
    assert read_pages(saved, "openai") == fetched
