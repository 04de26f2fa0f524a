"""Monthly statements: exact amounts, the one rounding, markup parsing, the month, and the JSON, CSV and PDF."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.customers.markup import MarkupError, parse_markup
from core.customers.statement import (
    Statement,
    StatementError,
    StatementLine,
    build_statement,
    csv_text_cell,
    latin1_text,
    month_bounds,
    statement_csv,
    statement_json,
    statement_pdf,
)

D = Decimal


def line(
    provider: str = "openai", model: str = "gpt-4o", cost: str = "1", calls: int = 1, **tokens: int
) -> StatementLine:
    return StatementLine(provider, model, calls, tokens.get("input_tokens", 0), tokens.get("output_tokens", 0), D(cost))


def issue_example() -> Statement:
    """Issue 23: calls costing $12.3400 in November for acme, markup 20."""
    return build_statement(
        "acme",
        "2026-11",
        "UTC",
        D("20"),
        [line("openai", "gpt-4o-mini", "12.3400", calls=3, input_tokens=1_234_567, output_tokens=89_012)],
    )


# ---------------------------------------------------------------------------------------- amounts


def test_the_issue_example_as_json() -> None:
    assert statement_json(issue_example()) == {
        "customer": "acme",
        "month": "2026-11",
        "tz": "UTC",
        "markup": "20",
        "lines": [
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "calls": 3,
                "input_tokens": 1234567,
                "output_tokens": 89012,
                "cost": "12.3400",
                "billable": "14.8080",
            }
        ],
        "totals": {"cost": "12.3400", "billable": "14.81", "margin": "2.47"},
    }


def test_line_billables_are_exact_and_only_the_total_is_rounded() -> None:
    # Rounded line by line, 0.006 twice would bill 0.02; the contract rounds once: 0.012 -> 0.01.
    statement = build_statement("acme", "2026-11", "UTC", "0", [line("a", "m", "0.006"), line("b", "m", "0.006")])
    assert [entry.billable for entry in statement.lines] == [D("0.006"), D("0.006")]
    body = statement_json(statement)
    assert [entry["billable"] for entry in body["lines"]] == ["0.0060", "0.0060"]
    assert body["totals"] == {"cost": "0.0120", "billable": "0.01", "margin": "-0.002"}
    assert statement.totals.billable_exact == D("0.012")
    assert statement.totals.rounding == D("-0.002")


@pytest.mark.parametrize(
    ("cost", "billable"),
    [
        ("0.125", "0.12"),  # a half goes to the even cent
        ("0.135", "0.14"),
        ("2.665", "2.66"),
        ("2.675", "2.68"),
        ("0.1250000000001", "0.13"),  # just above the half goes up
        ("0.1249999999999", "0.12"),
    ],
)
def test_the_total_is_rounded_half_even_at_the_cent(cost: str, billable: str) -> None:
    statement = build_statement("acme", "2026-11", "UTC", "0", [line(cost=cost)])
    assert statement_json(statement)["totals"]["billable"] == billable


def test_a_negative_markup_is_a_discount() -> None:
    statement = build_statement("acme", "2026-11", "UTC", "-12.5", [line(cost="0.3333")])
    assert statement.lines[0].billable == D("0.3333") * D("0.875") == D("0.29163750")
    body = statement_json(statement)
    assert body["markup"] == "-12.5"
    assert body["lines"][0]["billable"] == "0.2916375"
    assert body["totals"] == {"cost": "0.3333", "billable": "0.29", "margin": "-0.0433"}


def test_amounts_stay_exact_beyond_the_default_decimal_precision() -> None:
    # 26 significant digits of cost times a 6-decimal markup: 36 digits, more than Decimal's default 28.
    cost = "98765432109876.123456789012"
    statement = build_statement("acme", "2026-11", "UTC", "33.333333", [line(cost=cost)])
    expected = Fraction(cost) * (1 + Fraction("33.333333") / 100)
    assert Fraction(statement.lines[0].billable) == expected
    assert Fraction(statement.totals.margin) == Fraction(statement.totals.billable) - Fraction(cost)
    assert "E" not in statement_json(statement)["lines"][0]["billable"]


def test_totals_add_every_line_and_lines_are_sorted() -> None:
    statement = build_statement(
        "acme",
        "2026-11",
        "Europe/Paris",
        "10",
        [
            line("openai", "gpt-4o", "1.10", calls=2, input_tokens=10, output_tokens=5),
            line("anthropic", "claude-sonnet-4", "2.2", calls=3, input_tokens=20, output_tokens=7),
        ],
    )
    assert [(entry.provider, entry.model) for entry in statement.lines] == [
        ("anthropic", "claude-sonnet-4"),
        ("openai", "gpt-4o"),
    ]
    totals = statement.totals
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (5, 30, 12)
    assert statement_json(statement)["totals"] == {"cost": "3.3000", "billable": "3.63", "margin": "0.33"}


def test_a_month_without_calls_is_a_statement_of_zeros() -> None:
    body = statement_json(build_statement("acme", "2026-11", None, "20", []))
    assert body["tz"] == "UTC"
    assert body["lines"] == []
    assert body["totals"] == {"cost": "0.0000", "billable": "0.00", "margin": "0.00"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([line(), line()], "lines: openai/gpt-4o appears twice"),
        ([line(cost="-1")], "lines[0].cost: not a finite Decimal ≥ 0: Decimal('-1')"),
        ([StatementLine("p", "m", 1, 0, 0, 0.5)], "lines[0].cost: not a finite Decimal ≥ 0: 0.5"),  # type: ignore[arg-type]
        ([StatementLine("p", "m", -1, 0, 0, D(0))], "lines[0].calls: not a whole number ≥ 0: -1"),
        ([StatementLine("", "m", 1, 0, 0, D(0))], "lines[0].provider: not a non-empty string: ''"),
    ],
)
def test_bad_lines_are_refused(lines: list[StatementLine], message: str) -> None:
    with pytest.raises(StatementError) as caught:
        build_statement("acme", "2026-11", "UTC", "0", lines)
    assert str(caught.value) == message


def test_bad_customer_month_zone_or_markup_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^customer: not a customer name: ' '$"):
        build_statement(" ", "2026-11", "UTC", "0", [])
    with pytest.raises(ValueError, match=r"^month: '2026-13' is not a month"):
        build_statement("acme", "2026-13", "UTC", "0", [])
    with pytest.raises(ValueError, match=r"^tz: 'Mars/Olympus' is not a known time zone"):
        build_statement("acme", "2026-11", "Mars/Olympus", "0", [])
    with pytest.raises(ValueError, match=r"^markup: 'x' is not a number"):
        build_statement("acme", "2026-11", "UTC", "x", [])


# ---------------------------------------------------------------------------------------- markup


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20", D("20")),
        ("0", D("0")),
        ("-0", D("0")),
        ("20.0", D("20")),
        (" 12.50 ", D("12.5")),
        ("20%", D("20")),
        ("+5", D("5")),
        ("-99.999999", D("-99.999999")),
        (".5", D("0.5")),
        ("1000000", D("1000000")),
        (D("7.25"), D("7.25")),
        (15, D("15")),
    ],
)
def test_markups_that_parse(text: object, value: Decimal) -> None:
    assert parse_markup(text) == value
    assert "E" not in str(parse_markup(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "--markup: 'abc' is not a number (a percent such as 20, 12.5 or -10)"),
        ("", "--markup: '' is not a number (a percent such as 20, 12.5 or -10)"),
        ("NaN", "--markup: 'NaN' is not a number (a percent such as 20, 12.5 or -10)"),
        ("Infinity", "--markup: 'Infinity' is not a number (a percent such as 20, 12.5 or -10)"),
        ("1e3", "--markup: '1e3' is not a number (a percent such as 20, 12.5 or -10)"),
        ("1_000", "--markup: '1_000' is not a number (a percent such as 20, 12.5 or -10)"),
        ("-100", "--markup: '-100' must be more than -100 (a discount of 100% or more bills nothing)"),
        ("-150", "--markup: '-150' must be more than -100 (a discount of 100% or more bills nothing)"),
        ("1.1234567", "--markup: '1.1234567' has more than 6 decimal places"),
        ("1000001", "--markup: '1000001' is above the sane maximum of 1,000,000%"),
        (20.5, "--markup: 20.5 is not an exact percent (give it as text, e.g. 20 or -10)"),
        (D("NaN"), "--markup: Decimal('NaN') is not a finite number"),
    ],
)
def test_markups_that_are_refused(text: object, message: str) -> None:
    with pytest.raises(MarkupError) as caught:
        parse_markup(text)
    assert str(caught.value) == message


def test_trailing_zeros_do_not_count_as_decimal_places() -> None:
    assert parse_markup("1.500000000") == D("1.5")


# ---------------------------------------------------------------------------------------- the month


def test_month_bounds_are_the_local_month_in_utc() -> None:
    assert month_bounds("2026-11", "UTC") == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    # Paris is UTC+1 in November; the month starts at 23:00 UTC the day before.
    assert month_bounds("2026-11", "Europe/Paris") == (
        datetime(2026, 10, 31, 23, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),
    )
    # New York changes from EST (-5) to EDT (-4) inside March: the ends have different offsets.
    assert month_bounds("2026-03", "America/New_York") == (
        datetime(2026, 3, 1, 5, tzinfo=UTC),
        datetime(2026, 4, 1, 4, tzinfo=UTC),
    )
    assert month_bounds("2026-12", "Asia/Kolkata") == (
        datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
        datetime(2026, 12, 31, 18, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "month", ["2026-13", "2026-00", "2026-1", "202611", "2026/11", " 2026-11", "2026-11-01", "", "nov"]
)
def test_a_bad_month_is_named(month: str) -> None:
    with pytest.raises(ValueError) as caught:
        month_bounds(month, "UTC")
    assert str(caught.value) == f"month: {month!r} is not a month (YYYY-MM, e.g. 2026-11)"


def test_a_month_before_2000_or_a_bad_zone_is_named() -> None:
    with pytest.raises(ValueError, match=r"^month: '1999-12' is before 2000-01$"):
        month_bounds("1999-12", "UTC")
    with pytest.raises(ValueError, match=r"^tz: 'Europe/Atlantis' is not a known time zone"):
        month_bounds("2026-11", "Europe/Atlantis")


# ---------------------------------------------------------------------------------------- CSV


def test_csv_has_the_header_the_lines_a_total_row_and_a_margin_row() -> None:
    text = statement_csv(issue_example())
    assert text.splitlines()[0] == "provider,model,calls,input_tokens,output_tokens,cost,billable"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["provider", "model", "calls", "input_tokens", "output_tokens", "cost", "billable"],
        ["openai", "gpt-4o-mini", "3", "1234567", "89012", "12.3400", "14.8080"],
        ["total", "", "3", "1234567", "89012", "12.3400", "14.81"],
        ["margin", "", "", "", "", "", "2.47"],
    ]


HOSTILE = [
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "\t=1",
    "\r=1",
    "safe;=1+2",
    "safe,@A1",
    'q"=1',
]


@pytest.mark.parametrize("name", HOSTILE)
def test_csv_neutralises_a_provider_or_model_a_spreadsheet_would_run(name: str) -> None:
    statement = build_statement("acme", "2026-11", "UTC", "0", [line(name, name, "1")])
    text = statement_csv(statement)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    provider, model = rows[1][0], rows[1][1]
    assert provider == model
    assert provider.startswith("'") or provider[0] not in "=+-@\t\r"
    # Split as a careless reader would (on ; and , even inside quotes): no piece starts a formula.
    for piece in provider.replace(";", ",").split(","):
        assert not piece.startswith(("=", "+", "-", "@", "\t", "\r"))
    # Nothing is lost but the quote marks added: the name reads back with them removed.
    assert provider.replace(";'", ";").replace(",'", ",").removeprefix("'") == name


def test_csv_quotes_every_text_cell_and_leaves_ordinary_names_alone() -> None:
    assert csv_text_cell("gpt-4o") == '"gpt-4o"'
    assert csv_text_cell('say "hi"') == '"say ""hi"""'
    assert csv_text_cell("=1+2") == '"\'=1+2"'
    assert csv_text_cell("a;=1+2") == '"a;\'=1+2"'
    text = statement_csv(issue_example())
    assert text.splitlines()[1].startswith('"openai","gpt-4o-mini",3,')


def test_a_negative_margin_stays_a_number_in_csv() -> None:
    statement = build_statement("acme", "2026-11", "UTC", "-50", [line(cost="10")])
    rows = list(csv.reader(io.StringIO(statement_csv(statement), newline="")))
    assert rows[-1] == ["margin", "", "", "", "", "", "-5.00"]


# ---------------------------------------------------------------------------------------- PDF


def pdf_text_pypdf(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_text_poppler(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "statement.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def assert_issue_figures(text: str) -> None:
    for figure in ("acme", "November 2026", "UTC", "20%", "1,234,567", "89,012", "12.3400", "14.8080", "14.81"):
        assert figure in text, figure
    assert "Total due: USD 14.81" in text
    assert "rounded half-even to the cent" in text
    assert "+0.002" in text


def test_the_pdf_read_back_by_pypdf_shows_the_figures() -> None:
    data = statement_pdf(issue_example())
    assert data.startswith(b"%PDF-")
    text = pdf_text_pypdf(data)
    assert_issue_figures(text)
    assert "2.47" not in text  # the margin is not for the customer's eyes by default


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed")
def test_the_pdf_read_back_by_pdftotext_shows_the_figures(tmp_path: Path) -> None:
    text = pdf_text_poppler(statement_pdf(issue_example()), tmp_path)
    assert_issue_figures(text)
    assert "Markup: 20% on cost" in text
    internal = pdf_text_poppler(statement_pdf(issue_example(), show_margin=True), tmp_path)
    assert "Margin: 2.47" in internal


def test_the_pdf_shows_a_discount_and_the_local_month() -> None:
    statement = build_statement("acme", "2026-11", "Europe/Paris", "-10", [line(cost="1000", calls=1234)])
    text = pdf_text_pypdf(statement_pdf(statement))
    assert "Discount: 10% off cost" in text
    assert "Europe/Paris" in text
    assert "2026-10-31 23:00" in text  # the month's start in UTC
    assert "1,000.0000" in text and "900.0000" in text and "USD 900.00" in text
    assert "1,234" in text


def test_a_long_statement_flows_onto_more_pages() -> None:
    lines = [line("openai", f"model-{i:03d}", "0.0100", calls=1) for i in range(150)]
    data = statement_pdf(build_statement("acme", "2026-11", "UTC", "0", lines))
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 3
    text = pdf_text_pypdf(data)
    assert "model-000" in text and "model-149" in text
    assert "USD 1.50" in reader.pages[-1].extract_text()
    assert f"page 2 of {len(reader.pages)}" in text


def test_names_outside_latin1_are_transliterated_in_the_pdf_and_exact_elsewhere() -> None:
    name = "Zoë Łódź “Ltd” 日本"
    assert latin1_text(name) == 'Zoë Lódz "Ltd" ??'
    statement = build_statement(name, "2026-11", "UTC", "0", [line("openai", "gpt-4o\u2013mini", "1")])
    text = pdf_text_pypdf(statement_pdf(statement))
    assert 'Zoë Lódz "Ltd" ??' in text
    assert "gpt-4o-mini" in text
    assert statement_json(statement)["customer"] == name
