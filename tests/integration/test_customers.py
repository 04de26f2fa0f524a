"""Customers and statements (issue 23) on SQLite and PostgreSQL: the issue's example, first added wins,
the month in the customer's zone, unmatched calls, bad input, and the PDF read back by pdftotext.

Calls go to a provider without a price, so each costs the estimate of USD 1 per 1M input tokens:
the figures are exact and chosen by token counts.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.cli.main import main
from core.customers import service
from core.recording.calls import make_call, record_batch


def usd(amount: str, at: str, model: str = "m1", **fields: object):  # type: ignore[no-untyped-def]
    """A call costing exactly ``amount`` dollars (the estimate) at ``at``."""
    return make_call("acmeai", model, int(Decimal(amount) * 1_000_000), 0, timestamp=at, **fields)  # type: ignore[arg-type]


@pytest.fixture
def cli(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", db_url)
    return engine


def _json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_issue_example_statement_json(cli: Engine, capsys: pytest.CaptureFixture) -> None:
    record_batch(
        cli,
        [
            usd("10", "2026-11-03T10:00:00Z", "m1", project="acme", tags=["feature:summarize"]),
            usd("2.34", "2026-11-20T10:00:00Z", "m2", project="acme", tags=["feature:summarize"]),
            usd("5", "2026-10-31T10:00:00Z", project="acme"),  # October: not on November's statement
            usd("7", "2026-11-04T10:00:00Z", project="other"),  # nobody's
        ],
    )
    assert main(["customers", "add", "--name", "acme", "--match", "project:acme", "--markup", "20"]) == 0
    capsys.readouterr()
    out = _json(capsys, "statement", "--customer", "acme", "--month", "2026-11", "--format", "json")
    assert out["customer"] == "acme" and out["month"] == "2026-11" and out["tz"] == "UTC" and out["markup"] == "20"
    assert out["totals"] == {"cost": "12.3400", "billable": "14.81", "margin": "2.47"}
    assert [(line["model"], line["calls"], line["cost"], line["billable"]) for line in out["lines"]] == [
        ("m1", 1, "10.0000", "12.0000"),
        ("m2", 1, "2.3400", "2.8080"),
    ]
    overview = service.month_overview(cli, "2026-11", "UTC")
    (acme,) = overview.customers
    assert (acme.totals.cost, acme.totals.billable, acme.totals.margin) == (
        Decimal("12.34"),
        Decimal("14.81"),
        Decimal("2.47"),
    )
    assert (overview.unmatched_calls, overview.unmatched_cost) == (1, Decimal("7"))


def test_first_added_wins_and_tag_user_matches(cli: Engine, capsys: pytest.CaptureFixture) -> None:
    at = "2026-11-10T10:00:00Z"
    record_batch(
        cli,
        [
            usd("1", at, user="alice", project="acme", tags=["vip"]),  # matches all three rules
            usd("2", at, user="alice"),
            usd("4", at, tags=["vip"]),
            usd("8", at, project="acme"),
        ],
    )
    service.add_customer(cli, "by-tag", "tag:vip", "0")
    service.add_customer(cli, "by-user", "user:alice", "-10")
    service.add_customer(cli, "by-project", "project:acme", "0")
    totals = {
        name: service.statement_for(cli, name, "2026-11").totals.cost for name in ("by-tag", "by-user", "by-project")
    }
    assert totals == {"by-tag": Decimal("5"), "by-user": Decimal("2"), "by-project": Decimal("8")}
    discounted = service.statement_for(cli, "by-user", "2026-11").totals
    assert (discounted.billable, discounted.margin) == (Decimal("1.80"), Decimal("-0.20"))
    listed = _json(capsys, "customers", "list", "--json")["customers"]
    assert [(c["name"], c["match"], c["markup"]) for c in listed] == [
        ("by-tag", "tag:vip", "0"),
        ("by-user", "user:alice", "-10"),
        ("by-project", "project:acme", "0"),
    ]
    # removing the first customer gives its calls to the next rule that matches them
    assert main(["customers", "remove", "by-tag"]) == 0
    assert service.statement_for(cli, "by-user", "2026-11").totals.cost == Decimal("3")
    assert service.month_overview(cli, "2026-11").unmatched_cost == Decimal("4")


def test_month_in_the_customers_zone(cli: Engine, capsys: pytest.CaptureFixture) -> None:
    record_batch(
        cli, [usd("1", "2026-11-30T23:30:00Z", project="acme"), usd("2", "2026-10-31T23:30:00Z", project="acme")]
    )
    service.add_customer(cli, "acme", "project:acme")
    utc = _json(capsys, "statement", "--customer", "acme", "--month", "2026-11")
    paris = _json(capsys, "statement", "--customer", "acme", "--month", "2026-11", "--tz", "Europe/Paris")
    assert utc["totals"]["cost"] == "1.0000" and paris["totals"]["cost"] == "2.0000" and paris["tz"] == "Europe/Paris"


def test_csv_statement(cli: Engine, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    record_batch(cli, [usd("12.34", "2026-11-03T10:00:00Z", project="acme")])
    service.add_customer(cli, "acme", "project:acme", "20")
    out = tmp_path / "acme.csv"
    assert main(["statement", "--customer", "acme", "--month", "2026-11", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["provider", "model", "calls", "input_tokens", "output_tokens", "cost", "billable"]
    assert rows[1][:3] == ["acmeai", "m1", "1"] and rows[1][5:] == ["12.3400", "14.8080"]
    assert rows[-2][0] == "total" and "14.81" in rows[-2] and rows[-1][0] == "margin" and "2.47" in rows[-1]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_pdf_read_back_by_pdftotext(cli: Engine, tmp_path: Path) -> None:
    record_batch(
        cli,
        [
            usd("10", "2026-11-03T10:00:00Z", "m1", project="acme"),
            usd("2.34", "2026-11-20T10:00:00Z", "m2", project="acme"),
        ],
    )
    service.add_customer(cli, "Acme GmbH", "project:acme", "20")
    out = tmp_path / "acme.pdf"
    args = ["statement", "--customer", "Acme GmbH", "--month", "2026-11", "--format", "pdf", "--out", str(out)]
    assert main(args) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True).stdout
    assert "Customer: Acme GmbH" in text and "November 2026" in text and "Markup: 20% on cost" in text
    assert "Total due: USD 14.81" in text
    assert "12.3400" in text and "14.8080" in text and "2.8080" in text  # total cost, exact billable, a line
    assert "rounding +0.002" in text.replace("\n", " ")
    assert "Margin" not in text  # internal: never on what the customer is sent


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["customers", "add", "--name", "x", "--match", "team:a"],
            "--match: 'team:a' is not user:U, project:P or tag:T",
        ),
        (["customers", "add", "--name", "x", "--match", "tag:" + "t" * 101], "--match: tag[0]: at most 100 characters"),
        (
            ["customers", "add", "--name", "x", "--match", "user:a", "--markup", "abc"],
            "--markup: 'abc' is not a number",
        ),
        (["customers", "add", "--name", "x", "--match", "user:a", "--markup", "-100"], "--markup: '-100' must be more"),
        (["customers", "add", "--name", "acme", "--match", "user:a"], "--name: 'acme' is already a customer"),
        (["customers", "remove", "nobody"], "NAME: 'nobody' is not a customer"),
        (["statement", "--customer", "nobody", "--month", "2026-11"], "--customer: 'nobody' is not a customer"),
        (["statement", "--customer", "acme", "--month", "2026-13"], "--month: '2026-13' is not a month"),
        (["statement", "--customer", "acme", "--month", "2026-11", "--tz", "Mars/Base"], "--tz"),
        (["statement", "--customer", "acme", "--month", "2026-11", "--format", "xls"], "--format: 'xls'"),
    ],
)
def test_bad_input_exit_2_naming_the_field(
    cli: Engine, capsys: pytest.CaptureFixture, tmp_path: Path, args: list[str], message: str
) -> None:
    service.add_customer(cli, "acme", "project:acme")
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "never.pdf"
    extra = ["--out", str(out)] if args[0] == "statement" else []
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert list(folder.iterdir()) == []  # nothing written, not even a part file
    assert [c.name for c in service.list_customers(cli)] == ["acme"]
