"""FOCUS 1.2 rows, CSV and Parquet: checked against the specification's column rules and read back by pyarrow."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from core.reporting.focus import (
    COLUMNS,
    DATETIME_COLUMNS,
    DECIMAL_COLUMNS,
    FocusError,
    FocusGroup,
    focus_rows,
    write_csv,
    write_parquet,
)
from tests.support.focus_rules import (
    CONTRACT_DEPARTURES,
    check_csv,
    check_parquet,
    check_rows,
    check_spendboard_rows,
)

D = Decimal
RATES = {
    "input": D("0.0000025"),
    "cached_input": D("0.00000125"),
    "cache_write": D("0.000003125"),
    "cache_write_1h": D("0.000005"),
    "output": D("0.00001"),
    "reasoning": D("0.00001"),
    "web_search": D("0.01"),
    "request": D("0.0004"),
}


def group(token_type: str = "input", quantity: int = 1000, **changes: Any) -> FocusGroup:
    fields: dict[str, Any] = dict(
        day=date(2026, 11, 3),
        provider="openai",
        model="gpt-4o",
        service_tier="standard",
        project="search",
        tags=("env:prod", "feature:summarize"),
        token_type=token_type,
        quantity=quantity,
        unit_price=RATES.get(token_type, D("0.000001")),
        cost=RATES.get(token_type, D("0.000001")) * quantity,
    )
    fields.update(changes)
    return FocusGroup(**fields)


def sample_groups() -> list[FocusGroup]:
    """Every token type, a month end and a year end, a project-less group, repeated and unsorted tags."""
    groups = [group(kind, quantity) for kind, quantity in zip(RATES, (1200, 300, 50, 25, 800, 150, 2, 7), strict=True)]
    groups.append(group("input", 10, day=date(2026, 12, 31), project=None, tags=("b", "a", "b")))
    groups.append(
        group(
            "output",
            987_654_321,
            day=date(2027, 1, 1),
            provider="anthropic",
            model="claude-sonnet-4-5",
            service_tier="batch",
            tags=(),
            unit_price=D("0.0000075"),
            cost=D("0.0000075") * 987_654_321,
        )
    )
    return groups


def test_rows_follow_the_focus_1_2_rules_and_the_contract() -> None:
    rows = list(focus_rows(sample_groups()))

    assert len(rows) == 10
    assert check_rows(rows, allow=CONTRACT_DEPARTURES) == []
    assert check_spendboard_rows(rows) == []
    assert [list(row) for row in rows] == [list(COLUMNS)] * len(rows)


def test_the_only_departure_from_the_spec_is_the_contracts_tags_array() -> None:
    """The spec's Key-Value Format wants scalar values; the contract's Tags carry a list (DESIGN.md)."""
    problems = check_rows(list(focus_rows(sample_groups())))

    assert problems
    assert problems == [f"Tags.ScalarValues: row {i}: the value of 'tags' is an array, not a scalar" for i in range(10)]


def test_a_row_says_what_was_charged_when_and_to_whom() -> None:
    [row] = focus_rows([group("cache_write_1h", 4000, day=date(2026, 12, 31), tags=("nightly", "env:prod", "nightly"))])

    assert row["BillingPeriodStart"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert row["BillingPeriodEnd"] == datetime(2027, 1, 1, tzinfo=UTC)
    assert row["ChargePeriodStart"] == datetime(2026, 12, 31, tzinfo=UTC)
    assert row["ChargePeriodEnd"] == datetime(2027, 1, 1, tzinfo=UTC)
    assert row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"] == row["ListCost"] == D("0.02")
    assert row["ListUnitPrice"] == D("0.000005")
    assert row["PricingQuantity"] == row["ConsumedQuantity"] == 4000
    assert row["PricingUnit"] == row["ConsumedUnit"] == "Tokens"
    assert row["ChargeClass"] is None
    assert (row["ProviderName"], row["PublisherName"], row["InvoiceIssuerName"]) == ("openai",) * 3
    assert row["SkuId"] == "openai/gpt-4o"
    assert row["SkuPriceId"] == "openai/gpt-4o/standard/cache_write_1h"
    assert row["x_TokenType"] == "cache_write_1h"
    assert row["x_ServiceTier"] == "standard"
    assert json.loads(row["Tags"]) == {"project": "search", "tags": ["env:prod", "nightly"]}
    assert "gpt-4o" in row["ChargeDescription"] and "0.000005 USD per token" in row["ChargeDescription"]


def test_searches_and_per_call_fees_are_rows_of_their_own_units() -> None:
    rows = list(focus_rows([group("web_search", 3), group("request", 12, project=None, tags=())]))

    assert [(r["ConsumedUnit"], r["PricingUnit"], r["ConsumedQuantity"]) for r in rows] == [
        ("Searches", "Searches", 3),
        ("Requests", "Requests", 12),
    ]
    assert json.loads(rows[1]["Tags"]) == {"project": None, "tags": []}


def test_list_cost_is_exact_where_default_decimal_precision_would_round() -> None:
    """28 significant digits (Python's default context) would round this product."""
    price, quantity = D("999.123456789012"), 98_765_432_109_876
    exact = D("98678859940879791.971333482512")  # 29 digits: the default context drops the last
    [row] = focus_rows([group("request", quantity, unit_price=price, cost=exact)])

    assert row["ListCost"] == exact
    assert check_rows([row], allow=CONTRACT_DEPARTURES) == []


def test_the_costs_of_the_rows_add_up_to_the_groups_exactly() -> None:
    groups = sample_groups()
    assert sum(r["BilledCost"] for r in focus_rows(groups)) == sum(g.cost for g in groups)


def test_groups_with_nothing_consumed_make_no_row() -> None:
    assert list(focus_rows([group("reasoning", 0), group("input", 1)]))[0]["x_TokenType"] == "input"
    assert len(list(focus_rows([group("reasoning", 0)]))) == 0


def test_rows_are_made_lazily() -> None:
    endless: Iterator[FocusGroup] = (group("input", n + 1) for n in itertools.count())
    assert len(list(itertools.islice(focus_rows(endless), 3))) == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cost": D("0.0026")}, "cost: 0.0026 is not unit_price 0.0000025 × quantity 1000"),
        ({"token_type": "audio"}, "token_type: 'audio' is not one of"),
        ({"quantity": -1, "cost": D("-0.0000025")}, "quantity: -1 is not a non-negative whole number"),
        ({"unit_price": 0.0000025}, "unit_price: 2.5e-06 is not a finite Decimal"),
        ({"unit_price": D("0.0000000000001"), "cost": D("0.0000000001")}, "unit_price: 1E-13 has more than 12"),
        ({"day": datetime(2026, 11, 3, tzinfo=UTC)}, "day: datetime.datetime(2026, 11, 3"),
        ({"provider": " "}, "provider: ' ' is not a non-empty text"),
        ({"project": ""}, "project: '' is neither null nor a non-empty text"),
        ({"tags": ["a"]}, "tags: ['a'] is not a tuple of non-empty texts"),
    ],
)
def test_a_bad_group_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FocusError, match="^" + re.escape(message)):
        group(**changes)


def test_a_missing_billing_account_is_refused() -> None:
    with pytest.raises(FocusError, match="account_id: '' is not a non-empty text"):
        list(focus_rows([group()], account_id=""))


# -- The checker itself must catch what the spec forbids, or the tests above prove nothing.


def _one_row() -> dict[str, Any]:
    return next(focus_rows([group()]))


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"ListCost": D("0.002500000001")}, "ListCost.Product"),
        ({"ChargePeriodStart": datetime(2026, 10, 31, tzinfo=UTC)}, "ChargePeriod.InBillingPeriod"),
        ({"ChargePeriodEnd": datetime(2026, 11, 3, tzinfo=UTC)}, "ChargePeriod.Order"),
        ({"ChargeClass": ""}, "NullHandling.EmptyString"),
        ({"ChargeClass": "Refund"}, "ChargeClass.Allowed"),
        ({"ChargeCategory": "Usage-Based"}, "ChargeCategory.Allowed"),
        ({"ServiceCategory": "AI"}, "ServiceCategory.Allowed"),
        ({"BillingCurrency": "usd"}, "BillingCurrency.CurrencyFormat"),
        ({"BilledCost": None}, "BilledCost.NotNull"),
        ({"BilledCost": 0.0025}, "BilledCost.Decimal"),
        ({"BillingPeriodStart": datetime(2026, 11, 1)}, "DateTimeFormat.UTC"),
        ({"ListUnitPrice": D("-0.0000025"), "ListCost": D("-0.0025")}, "ListUnitPrice.NonNegative"),
        ({"PricingUnit": None}, "PricingUnit.Nullability"),
        ({"SkuId": None}, "SkuId.Nullability"),
        ({"ConsumedUnit": "tokens"}, "UnitFormat"),
        ({"Tags": "project=search"}, "Tags.JSONObject"),
        ({"Tags": '{"project": "a", "project": "b", "tags": []}'}, "Tags.UniqueKeys"),
        ({"x_TokenType": None, "TokenType": "input"}, "Columns.CustomPrefix"),
    ],
)
def test_the_checker_catches_a_broken_rule(change: dict[str, Any], rule: str) -> None:
    row = _one_row()
    row.update(change)
    problems = check_rows([row], allow=CONTRACT_DEPARTURES)
    assert any(line.startswith(f"{rule}: ") for line in problems), problems


def test_the_checker_catches_a_missing_mandatory_column() -> None:
    row = _one_row()
    del row["ChargeClass"]
    assert check_rows([row], allow=CONTRACT_DEPARTURES) == [
        "Columns.Mandatory: mandatory column ChargeClass is missing"
    ]


def test_the_contract_checker_catches_a_billing_period_that_is_not_the_month() -> None:
    row = _one_row()
    row["BillingPeriodEnd"] = datetime(2026, 12, 2, tzinfo=UTC)
    assert [line.split(":")[0] for line in check_spendboard_rows([row])] == ["Spendboard.BillingPeriodMonth"]


# -- Files.


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO(newline="")
    assert write_csv(rows, buffer) == len(rows)
    return buffer.getvalue()


def test_csv_cells_are_in_focus_formats_and_read_back_exactly_by_pyarrow() -> None:
    rows = list(focus_rows(sample_groups()))
    text = _csv_text(rows)

    assert check_csv(text, allow=CONTRACT_DEPARTURES) == []
    header, first = text.splitlines()[:2]
    assert header.split(",") == list(COLUMNS)
    assert "2026-11-01T00:00:00Z" in first and "0.0000025" in first
    assert "E-" not in text and "E+" not in text

    types = {name: pa.decimal128(38, 12) for name in DECIMAL_COLUMNS}
    types |= {name: pa.timestamp("s", tz="UTC") for name in DATETIME_COLUMNS}
    types |= {name: pa.string() for name in COLUMNS if name not in types}
    table = pa_csv.read_csv(
        io.BytesIO(text.encode()),
        convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    assert table.to_pylist() == rows


def test_the_csv_checker_catches_text_outside_the_numeric_and_datetime_formats() -> None:
    text = _csv_text([_one_row()]).replace("0.0025", "+0.0025").replace("2026-11-03T00:00:00Z", "2026-11-03 00:00")
    problems = check_csv(text, allow=CONTRACT_DEPARTURES)
    assert any(line.startswith("NumericFormat: ") for line in problems)
    assert any(line.startswith("DateTimeFormat: ") for line in problems)


def test_parquet_has_exact_decimal_utc_and_text_columns_and_reads_back_unchanged(tmp_path: Path) -> None:
    rows = list(focus_rows(sample_groups()))
    path = tmp_path / "focus.parquet"

    assert write_parquet(rows, path, batch_size=4) == len(rows)

    assert check_parquet(path, allow=CONTRACT_DEPARTURES) == []
    file = pq.ParquetFile(path)
    assert file.metadata.num_row_groups == 3
    schema = file.schema_arrow
    assert schema.field("BilledCost").type == pa.decimal128(38, 12)
    assert schema.field("ListUnitPrice").type == pa.decimal128(38, 12)
    assert schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert schema.field("Tags").type == pa.string()
    assert schema.metadata[b"FocusVersion"] == b"1.2"
    assert pq.read_table(path).to_pylist() == rows


def test_parquet_is_written_in_batches_without_holding_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced = 0
    write_table = pq.ParquetWriter.write_table

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal produced
        for row in focus_rows(group("input", n + 1) for n in range(25)):
            produced += 1
            yield row

    sizes: list[int] = []

    def sized(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
        sizes.append(table.num_rows)
        assert produced - sum(sizes[:-1]) == table.num_rows  # only this batch's rows were pulled
        write_table(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", sized)
    assert write_parquet(rows(), tmp_path / "big.parquet", batch_size=10) == 25
    assert sizes == [10, 10, 5]


def test_an_empty_export_is_a_valid_file_with_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    assert write_parquet([], path) == 0
    assert pq.read_table(path).column_names == list(COLUMNS)
    assert _csv_text([]).splitlines() == [",".join(COLUMNS)]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "ChargePeriodStart",
            datetime(2026, 11, 3, 1, 0),
            "ChargePeriodStart: 2026-11-03T01:00:00 is not a whole-second",
        ),
        (
            "ChargePeriodEnd",
            datetime(2026, 11, 4, 0, 0, 0, 500, tzinfo=UTC),
            "ChargePeriodEnd: 2026-11-04T00:00:00.0005",
        ),
        ("BilledCost", 0.0025, "BilledCost: 0.0025 is not a FOCUS value"),
    ],
)
def test_csv_refuses_a_value_it_cannot_write_in_focus_format(column: str, value: object, message: str) -> None:
    row = _one_row()
    row[column] = value
    with pytest.raises(FocusError, match="^" + re.escape(message)):
        write_csv([row], io.StringIO())
