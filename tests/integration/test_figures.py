"""Figures for other tools (issue 24) on SQLite and PostgreSQL: key scopes, ``GET /api/v1/spend`` against
``report --json``, ``GET /metrics`` parsed by prometheus_client, and the FOCUS export against the spec's rules."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from focus_rules import CONTRACT_DEPARTURES, check_csv, check_parquet, check_spendboard_rows, csv_rows
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from starlette.testclient import TestClient
from test_whole_bill import add_price

from core.cli.main import main
from core.ingest.keys import ApiKeyError, create_key, list_keys
from core.recording.calls import make_call, record_batch
from core.reporting import aggregates as reports
from core.reporting.focus_export import focus_groups

TODAY = datetime.now(UTC).date()
FIRST = TODAY - timedelta(days=12)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def used(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Calls of every kind over 10 days: tiers, caches, reasoning, searches, per-call fees, env and estimate
    prices, errors, projects, users; some at 22:30 UTC (the next day in Berlin)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ZETA_INPUT_TOKEN_COST", "0.0000007")
    monkeypatch.setenv("ZETA_OUTPUT_TOKEN_COST", "0.0000021")
    add_price(
        engine,
        "acme",
        "big-1",
        input_token_cost="0.000002",
        output_token_cost="0.000008",
        cached_input_token_cost="0.0000005",
        cache_write_token_cost="0.0000025",
        reasoning_token_cost="0.00001",
        cost_per_web_search="0.01",
        cost_per_request="0.0001",
        tiers=[{"above_input_tokens": 200000, "input_token_cost": "0.000004", "output_token_cost": "0.000012"}],
    )
    add_price(engine, "acme", "big-1", input_token_cost="0.000001", output_token_cost="0.000004", service_tier="batch")
    calls = []
    n = 0
    for offset in range(10):
        day = FIRST + timedelta(days=offset)
        for hour in (3, 12, 22):
            n += 1
            common: dict[str, Any] = {
                "user": f"user-{n % 3}",
                "request_id": f"r{n}",
                "project": ["a", "b", None][n % 3],
            }
            calls += [
                make_call("openai", "gpt-4o", 1000 + n, 200 + n, 100, timestamp=at(day, hour, 30), **common),
                make_call(
                    "acme",
                    "big-1",
                    250000 if n % 4 == 0 else 5000,
                    900,
                    1000,
                    timestamp=at(day, hour, 30),
                    cache_write_tokens=500,
                    cache_write_1h_tokens=100,
                    reasoning_tokens=300,
                    web_search_calls=n % 2,
                    user=common["user"],
                    request_id=f"a{n}",
                    project=common["project"],
                    status="error" if n % 5 == 0 else "ok",
                ),
                make_call(
                    "acme", "big-1", 4000, 400, timestamp=at(day, hour), service_tier="batch", request_id=f"b{n}"
                ),
                make_call("zeta", "z-small", 3000, 700, 200, timestamp=at(day, hour), request_id=f"z{n}"),
                make_call("nowhere", "mystery", 1234, 567, timestamp=at(day, hour), request_id=f"e{n}", status="error"),
            ]
    record_batch(engine, calls)
    return engine


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def client(used: Engine) -> Iterator[TestClient]:
    from routes.standalone import app

    with TestClient(app, raise_server_exceptions=False) as test_client:  # lifespan: the budget worker too
        yield test_client


def bearer(engine: Engine, scope: str, name: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(engine, name or f'k-{scope}', scope=scope).key}"}


# --- scopes ---


def test_keys_are_made_with_a_scope_listed_and_ingest_by_default(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert run_cli(capsys, "keys", "create", "--name", "plain")[0] == 0
    code, out, _ = run_cli(capsys, "keys", "create", "--name", "grafana", "--scope", "read", "--json")
    assert code == 0 and set(json.loads(out)) == {"id", "name", "key"}  # the contract's keys, unchanged
    code, _, err = run_cli(capsys, "keys", "create", "--name", "bad", "--scope", "admin")
    assert code == 2 and "--scope" in err and "'admin'" in err
    listed = {k["name"]: k["scope"] for k in json.loads(run_cli(capsys, "keys", "list", "--json")[1])}
    assert listed == {"plain": "ingest", "grafana": "read"}
    table = run_cli(capsys, "keys", "list")[1]
    assert "scope" in table.splitlines()[0] and " read " in table
    with pytest.raises(ApiKeyError, match="scope: 'owner' is not one of ingest, read, check, all"):
        create_key(engine, "x", scope="owner")
    assert [k.name for k in list_keys(engine)] == ["plain", "grafana"]


def test_a_key_outside_its_scope_gets_403_naming_the_scope_it_needs(client: TestClient, used: Engine) -> None:
    read, ingest, check, every = (bearer(used, s) for s in ("read", "ingest", "check", "all"))
    call = {"timestamp": at(TODAY, 1).isoformat(), "provider": "openai", "model": "gpt-4o", "input_tokens": 1,
            "output_tokens": 1, "request_id": "scoped"}  # fmt: skip
    for headers in (read, check):
        answer = client.post("/api/v1/calls", headers=headers, json=call)
        assert answer.status_code == 403 and "needs a key of scope 'ingest'" in answer.json()["error"]
        answer = client.post("/api/v1/litellm", headers=headers, json=[])
        assert answer.status_code == 403
        answer = client.post("/v1/traces", headers={**headers, "Content-Type": "application/json"}, content=b"{}")
        assert answer.status_code == 403 and "scope 'ingest'" in answer.json()["message"]
        assert answer.json()["code"] == 7  # PERMISSION_DENIED, as OTLP answers
    for headers in (ingest, check):
        for path in ("/api/v1/spend", "/metrics"):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 403 and "needs a key of scope 'read'" in answer.json()["error"]
    assert client.post("/api/v1/calls", headers=ingest, json=call).json()["accepted"] == 1
    assert client.post("/api/v1/calls", headers=every, json={**call, "request_id": "all"}).json()["accepted"] == 1
    for headers in (read, every):
        assert client.get("/api/v1/spend", headers=headers).status_code == 200
        assert client.get("/metrics", headers=headers).status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/api/v1/spend", headers={"Authorization": "Bearer sb_nope"}).status_code == 401
    assert client.get("/api/v1/openapi.json").json()["openapi"] == "3.1.0"  # no key needed


# --- /api/v1/spend ---

BERLIN_CASES = [
    [],
    ["--by", "model"],
    ["--by", "provider", "--tz", "Europe/Berlin"],
    ["--since", str(FIRST + timedelta(days=2)), "--until", str(FIRST + timedelta(days=5)), "--by", "user"],
    ["--since", str(FIRST + timedelta(days=1)), "--until", str(FIRST + timedelta(days=3)), "--tz", "Asia/Kolkata"],
    ["--by", "project", "--tz", "America/New_York", "--until", str(FIRST + timedelta(days=8))],
]


@pytest.mark.parametrize("arguments", BERLIN_CASES, ids=lambda a: " ".join(a) or "no arguments")
def test_spend_answers_exactly_what_report_json_prints(
    client: TestClient, used: Engine, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    code, printed, _ = run_cli(capsys, "report", *arguments, "--json")
    assert code == 0
    query = {arguments[i][2:]: arguments[i + 1] for i in range(0, len(arguments), 2)}
    answer = client.get("/api/v1/spend", params=query, headers=bearer(used, "read"))
    assert answer.status_code == 200
    assert answer.json() == json.loads(printed)
    assert Decimal(answer.json()["cost_total"]) > 0 and answer.json()["rows"]


def test_spend_filters_by_provider_model_user_and_project_as_the_reports_do(client: TestClient, used: Engine) -> None:
    headers = bearer(used, "read")
    start, end = reports.local_range(None, None, reports.ZoneInfo("UTC"), used)  # type: ignore[misc]
    for where, by in (
        ({"provider": "acme"}, "model"),
        ({"user": "user-1"}, "day"),
        ({"project": "a", "model": "gpt-4o"}, "user"),
    ):
        answer = client.get("/api/v1/spend", params={**where, "by": by}, headers=headers).json()
        expected = reports.totals(used, start, end, where)
        assert answer["calls"] == expected.calls and Decimal(answer["cost_total"]) == expected.cost_total
        assert sum(Decimal(r["cost_total"]) for r in answer["rows"]) == expected.cost_total


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"since": "2026-02-30"}, "since: '2026-02-30' is not a date"),
        ({"until": "yesterday"}, "until: 'yesterday' is not a date"),
        ({"since": "1999-12-31"}, "since: '1999-12-31' is outside"),
        ({"until": str(TODAY + timedelta(days=2))}, "until: "),
        ({"since": str(TODAY), "until": str(TODAY - timedelta(days=1))}, "until: "),
        ({"tz": "Mars/Olympus"}, "tz: 'Mars/Olympus' is not a known time zone"),
        ({"by": "colour"}, "by: 'colour' is not one of day, provider, model, user, project, tag"),
        ({"tag": ""}, "tag[0]: empty tag"),
        ({"tag": "x" * 101}, "tag[0]: at most 100 characters"),
        ({"limit": "5"}, "limit: unknown argument"),
        ({"provider": ""}, "provider: '' is not a name"),
        ({"model": "x" * 400}, "model: "),
    ],
)
def test_bad_spend_arguments_get_400_naming_the_argument(
    client: TestClient, used: Engine, query: dict[str, str], named: str
) -> None:
    answer = client.get("/api/v1/spend", params=query, headers=bearer(used, "read"))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(named)


def test_a_repeated_argument_is_refused(client: TestClient, used: Engine) -> None:
    answer = client.get("/api/v1/spend?by=model&by=user", headers=bearer(used, "read"))
    assert answer.status_code == 400 and answer.json()["error"].startswith("by: given 2 times")


def test_report_names_the_flag_for_the_same_bad_input(used: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "report", "--since", "1999-01-01")
    assert code == 2 and not out and err.startswith("error: --since: '1999-01-01' is outside")


# --- /metrics ---


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_are_the_recorded_figures_by_provider_model_and_status(
    client: TestClient, used: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "budgets", "add", "--name", "acme monthly", "--amount", "500", "--period", "month",
                   "--scope", "provider:acme")[0] == 0  # fmt: skip
    answer = client.get("/metrics", headers=bearer(used, "read"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(answer.text)
    start, end = reports.local_range(None, None, reports.ZoneInfo("UTC"), used)  # type: ignore[misc]
    total = reports.totals(used, start, end)
    calls = {k: v for k, v in samples.items() if k[0] == "spendboard_calls_total"}
    costs = {k: v for k, v in samples.items() if k[0] == "spendboard_cost_usd_total"}
    assert sum(calls.values()) == total.calls == 150
    assert sum(costs.values()) == pytest.approx(float(total.cost_total), rel=1e-12)
    label_names = {name for key in samples for name, _ in key[1]}
    assert "user" not in label_names and "user_id" not in label_names
    by_status = {dict(k[1])["status"]: 0.0 for k in calls}
    for key, value in calls.items():
        by_status[dict(key[1])["status"]] += value
    assert by_status == {"ok": 114.0, "error": 36.0}  # 30 'nowhere' calls and 6 of the 30 acme calls
    err = dict((("model", "big-1"), ("provider", "acme"), ("status", "error")))
    acme_error = reports.totals(used, start, end, {"provider": "acme", "model": "big-1"})
    assert calls[("spendboard_calls_total", tuple(sorted(err.items())))] == 6
    assert samples[("spendboard_unpriced_calls_total", ())] == total.estimated_calls == 30
    tokens = {dict(k[1])["type"]: 0.0 for k in samples if k[0] == "spendboard_tokens_total"}
    for key, value in samples.items():
        if key[0] == "spendboard_tokens_total":
            tokens[dict(key[1])["type"]] += value
    assert tokens["input"] == total.input_tokens and tokens["output"] == total.output_tokens
    assert tokens["cached_input"] == total.cached_input_tokens
    assert tokens["cache_write"] == total.cache_write_tokens + total.cache_write_1h_tokens
    assert tokens["reasoning"] == total.reasoning_tokens
    assert acme_error.calls == 60
    budget = (("budget", "acme monthly"),)
    assert samples[("spendboard_budget_amount_usd", budget)] == 500.0
    from core.budgets.service import list_status

    assert samples[("spendboard_budget_spend_usd", budget)] == pytest.approx(float(list_status(used)[0].spend))


def test_metrics_speak_openmetrics_when_asked(client: TestClient, used: Engine) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics

    answer = client.get("/metrics", headers={**bearer(used, "read"), "Accept": "application/openmetrics-text"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert any(f.name == "spendboard_cost_usd" for f in openmetrics(answer.text))


# --- FOCUS export ---


def test_focus_csv_follows_the_spec_and_adds_up_to_report_exactly(
    used: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    since, until = FIRST + timedelta(days=1), FIRST + timedelta(days=6)
    out = tmp_path / "focus.csv"
    code, _, err = run_cli(capsys, "export", "--format", "focus", "--since", str(since), "--until", str(until),
                           "--out", str(out))  # fmt: skip
    assert code == 0 and "FOCUS 1.2 rows" in err
    text = out.read_text(encoding="utf-8")
    assert check_csv(text, allow=CONTRACT_DEPARTURES) == []
    rows = csv_rows(text)
    assert check_spendboard_rows(rows) == []
    report = json.loads(run_cli(capsys, "report", "--since", str(since), "--until", str(until), "--json")[1])
    assert sum(r["BilledCost"] for r in rows) == Decimal(report["cost_total"])
    days = {r["ChargePeriodStart"].date() for r in rows}
    assert days == {since + timedelta(days=i) for i in range(6)}
    kinds = {r["x_TokenType"] for r in rows}
    assert kinds == {"input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning", "web_search",
                     "request"}  # fmt: skip
    tokens = sum(r["ConsumedQuantity"] for r in rows if r["ConsumedUnit"] == "Tokens")
    assert tokens == report["input_tokens"] + report["output_tokens"]  # each token in exactly one row
    searches = [r for r in rows if r["x_TokenType"] == "web_search"]
    assert {r["ConsumedUnit"] for r in searches} == {"Searches"} and all(
        r["ListUnitPrice"] == Decimal("0.01") for r in searches
    )
    tiers = {r["ListUnitPrice"] for r in rows if r["SkuId"] == "acme/big-1" and r["x_TokenType"] == "input"}
    assert tiers == {Decimal("0.000002"), Decimal("0.000004"), Decimal("0.000001")}  # base, long context, batch
    assert {r["x_ServiceTier"] for r in rows if r["SkuId"] == "acme/big-1"} == {"standard", "batch"}
    estimate = {r["ListUnitPrice"] for r in rows if r["SkuId"] == "nowhere/mystery"}
    assert estimate == {Decimal("0.000001")}
    zeta = {(r["x_TokenType"], r["ListUnitPrice"]) for r in rows if r["SkuId"] == "zeta/z-small"}
    assert zeta == {("input", Decimal("0.0000007")), ("cached_input", Decimal("0.0000007")),
                    ("output", Decimal("0.0000021"))}  # fmt: skip
    projects = {json.loads(r["Tags"])["project"] for r in rows}
    assert projects == {"a", "b", None}


def test_focus_parquet_reads_back_with_pyarrow_and_equals_the_csv(
    used: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parquet, text = tmp_path / "focus.parquet", tmp_path / "all.csv"
    assert run_cli(capsys, "export", "--format", "focus", "--out", str(parquet))[0] == 0
    assert run_cli(capsys, "export", "--format", "focus", "--out", str(text))[0] == 0
    assert check_parquet(parquet, allow=CONTRACT_DEPARTURES) == []
    table = pq.read_table(parquet)
    assert table.schema.metadata[b"FocusVersion"] == b"1.2"
    from_csv = csv_rows(text.read_text(encoding="utf-8"))
    assert table.num_rows == len(from_csv)
    assert sum(table.column("BilledCost").to_pylist()) == sum(r["BilledCost"] for r in from_csv)
    start, end = reports.local_range(None, None, reports.ZoneInfo("UTC"), used)  # type: ignore[misc]
    assert sum(table.column("BilledCost").to_pylist()) == reports.totals(used, start, end).cost_total
    code, stdout, _ = run_cli(capsys, "export", "--format", "focus")
    assert code == 0 and list(csv.reader(io.StringIO(stdout)))[0] == table.column_names


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--format", "csv"], "--format"),
        (["--format", "focus", "--out", "spend.xlsx"], "--out: 'spend.xlsx'"),
        (["--format", "focus", "--out", "no/such/folder/x.csv"], "--out: the folder"),
        (["--format", "focus", "--since", "2026-13-01"], "--since: '2026-13-01'"),
        (["--format", "focus", "--since", "2026-06-02", "--until", "2026-06-01"], "--until: 2026-06-01 is before"),
    ],
)
def test_bad_export_input_exits_2_naming_the_flag_and_writes_nothing(
    used: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], named: str
) -> None:
    code, out, err = run_cli(capsys, "export", *arguments)
    assert code == 2 and not out and named in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("spendboard.db")] == []


def test_an_empty_period_exports_the_header_only(
    used: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "empty.csv"
    day = str(FIRST - timedelta(days=30))
    assert run_cli(capsys, "export", "--format", "focus", "--since", day, "--until", day, "--out", str(out))[0] == 0
    assert len(out.read_text().splitlines()) == 1
    assert list(focus_groups(used, FIRST - timedelta(days=30), FIRST - timedelta(days=30))) == []


def test_an_environment_price_changed_within_a_day_gives_a_row_per_rate(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    day = FIRST + timedelta(days=3)
    for n, (rate_in, rate_out) in enumerate((("0.0000007", "0.0000021"), ("0.0000009", "0.0000027"))):
        monkeypatch.setenv("ZETA_INPUT_TOKEN_COST", rate_in)
        monkeypatch.setenv("ZETA_OUTPUT_TOKEN_COST", rate_out)
        record_batch(engine, [make_call("zeta", "z-small", 3001, 701, timestamp=at(day, 9 + n), request_id=f"v{n}")])
    code, out, err = run_cli(capsys, "export", "--format", "focus", "--since", str(day), "--until", str(day))
    assert code == 0, err
    rows = csv_rows(out)
    assert check_spendboard_rows(rows) == []
    assert sorted((r["x_TokenType"], r["ListUnitPrice"], r["PricingQuantity"]) for r in rows) == [
        ("input", Decimal("0.0000007"), 3001),
        ("input", Decimal("0.0000009"), 3001),
        ("output", Decimal("0.0000021"), 701),
        ("output", Decimal("0.0000027"), 701),
    ]
    report = json.loads(run_cli(capsys, "report", "--since", str(day), "--until", str(day), "--json")[1])
    assert sum(r["BilledCost"] for r in rows) == Decimal(report["cost_total"])
