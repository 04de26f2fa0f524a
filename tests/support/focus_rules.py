"""A checker of FOCUS 1.2 column rules, for the columns Spendboard's export produces (and any others present).

Written from the specification itself (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag ``v1.2``:
``specification/columns/*.md`` and ``specification/attributes/*.md``), independently of
``core.reporting.focus``: this module never imports it. Each rule has an id (``ListCost.Product``,
``Tags.KeyValueFormat``); a check returns the broken ones as ``"RULE: row N: what"`` lines, and a
caller may name rules it knowingly departs from in ``allow`` (Key-Value Format is split into
``Tags.JSONObject``, ``Tags.UniqueKeys`` and ``Tags.ScalarValues`` so a departure from one keeps the others).

``check_rows`` checks typed rows (Decimal, aware datetime, str, None); ``check_csv`` first checks the
text of every cell (Numeric Format, Date/Time Format) and ``check_parquet`` the file's column types,
then both check the rows. ``check_spendboard_rows`` adds the contract's own rules (DESIGN.md,
"Figures for other tools") on top of the specification's.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

# Every column ID of FOCUS 1.2 (specification/columns/*.md, "Column ID").
FOCUS_12_COLUMNS = frozenset(
    """AvailabilityZone BilledCost BillingAccountId BillingAccountName BillingAccountType BillingCurrency
    BillingPeriodEnd BillingPeriodStart CapacityReservationId CapacityReservationStatus ChargeCategory ChargeClass
    ChargeDescription ChargeFrequency ChargePeriodEnd ChargePeriodStart CommitmentDiscountCategory
    CommitmentDiscountId CommitmentDiscountName CommitmentDiscountQuantity CommitmentDiscountStatus
    CommitmentDiscountType CommitmentDiscountUnit ConsumedQuantity ConsumedUnit ContractedCost ContractedUnitPrice
    EffectiveCost InvoiceId InvoiceIssuerName ListCost ListUnitPrice PricingCategory PricingCurrency
    PricingCurrencyContractedUnitPrice PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice PricingQuantity
    PricingUnit ProviderName PublisherName RegionId RegionName ResourceId ResourceName ResourceType ServiceCategory
    ServiceName ServiceSubcategory SkuId SkuMeter SkuPriceDetails SkuPriceId SubAccountId SubAccountName
    SubAccountType Tags""".split()
)
# Feature level "Mandatory" in 1.2: exactly these 21.
MANDATORY = frozenset(
    """BilledCost BillingAccountId BillingAccountName BillingCurrency BillingPeriodEnd BillingPeriodStart
    ChargeCategory ChargeClass ChargeDescription ChargePeriodEnd ChargePeriodStart ContractedCost EffectiveCost
    InvoiceIssuerName ListCost PricingQuantity PricingUnit ProviderName PublisherName ServiceCategory
    ServiceName""".split()
)
DECIMAL = frozenset(
    """BilledCost CommitmentDiscountQuantity ConsumedQuantity ContractedCost
    ContractedUnitPrice EffectiveCost ListCost ListUnitPrice PricingCurrencyContractedUnitPrice
    PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice PricingQuantity""".split()
)
DATETIME = frozenset({"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"})
# "Allows nulls: False" in 1.2 (unconditionally).
NOT_NULL = frozenset(
    """BilledCost BillingAccountId BillingCurrency BillingPeriodEnd BillingPeriodStart ChargeCategory
    ChargePeriodEnd ChargePeriodStart ContractedCost EffectiveCost InvoiceIssuerName ListCost ProviderName
    PublisherName ServiceCategory ServiceName ChargeFrequency PricingCurrency""".split()
)
CHARGE_CATEGORIES = frozenset({"Usage", "Purchase", "Tax", "Credit", "Adjustment"})
CHARGE_CLASSES = frozenset({"Correction"})
SERVICE_CATEGORIES = frozenset(
    {
        "AI and Machine Learning",
        "Analytics",
        "Business Applications",
        "Compute",
        "Databases",
        "Developer Tools",
        "Multicloud",
        "Identity",
        "Integration",
        "Internet of Things",
        "Management and Governance",
        "Media",
        "Migration",
        "Mobile",
        "Networking",
        "Security",
        "Storage",
        "Web",
        "Other",
    }
)
# Numeric Format: an integer, a decimal, or "mEn" with a sign only on a negative exponent; no "+", no commas.
NUMERIC_TEXT = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE]-?\d+)?")
# Date/Time Format: 'YYYY-MM-DDTHH:mm:ssZ'.
DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Unit Format (SHOULD): "<plural-units>", "<singular>-<plural-time>", "<plural>/<time>", with optional whole quantities.
UNIT_TEXT = re.compile(r"(?:\d+ )?[A-Z][A-Za-z]*(?:-[A-Z][A-Za-z]*)?(?:/(?:\d+ )?[A-Z][A-Za-z]*)?")
CURRENCY_TEXT = re.compile(r"[A-Z]{3}")

MAX_LINES = 60


def _exact_product(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.traps[Inexact] = True
        return a * b


class _Report:
    def __init__(self, allow: Collection[str]) -> None:
        self.allow = frozenset(allow)
        self.lines: list[str] = []
        self.count = 0

    def add(self, rule: str, row: int | None, message: str) -> None:
        if rule in self.allow:
            return
        self.count += 1
        if len(self.lines) < MAX_LINES:
            where = f"row {row}: " if row is not None else ""
            self.lines.append(f"{rule}: {where}{message}")

    def result(self) -> list[str]:
        if self.count > len(self.lines):
            return [*self.lines, f"... and {self.count - len(self.lines)} more"]
        return list(self.lines)


def _check_columns(columns: list[str], report: _Report) -> None:
    for name in sorted(MANDATORY - set(columns)):
        report.add("Columns.Mandatory", None, f"mandatory column {name} is missing")
    for name in columns:
        if name not in FOCUS_12_COLUMNS and not name.startswith("x_"):
            report.add("Columns.CustomPrefix", None, f"{name} is neither a FOCUS 1.2 column nor prefixed x_")
    seen_custom = False
    for name in columns:
        if name.startswith("x_"):
            seen_custom = True
        elif seen_custom:
            report.add("Columns.Order", None, f"FOCUS column {name} comes after a custom column")
            break


def _check_key_value(text: object, row: int, report: _Report) -> None:
    if not isinstance(text, str):
        report.add("Tags.JSONObject", row, f"{text!r} is not serialized JSON text")
        return
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        duplicates.extend(k for k in set(keys) if keys.count(k) > 1)
        return dict(items)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_float=Decimal)
    except ValueError:
        report.add("Tags.JSONObject", row, f"{text!r} is not JSON")
        return
    if not isinstance(value, dict):
        report.add("Tags.JSONObject", row, f"{text!r} is not a JSON object")
        return
    if duplicates:
        report.add("Tags.UniqueKeys", row, f"keys repeated in {text!r}: {sorted(duplicates)}")
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            kind = "an object" if isinstance(item, dict) else "an array"
            report.add("Tags.ScalarValues", row, f"the value of {key!r} is {kind}, not a scalar")


def _check_row(index: int, row: Mapping[str, Any], columns: list[str], report: _Report) -> None:
    if list(row) != columns:
        report.add("Columns.Consistent", index, f"columns {list(row)} differ from the first row's")
    for name, value in row.items():
        if value is None:
            if name in NOT_NULL:
                report.add(f"{name}.NotNull", index, "is null")
            continue
        if name in DECIMAL:
            if not isinstance(value, Decimal) or not value.is_finite():
                report.add(f"{name}.Decimal", index, f"{value!r} is not a valid decimal value")
        elif name in DATETIME:
            if not isinstance(value, datetime):
                report.add(f"{name}.DateTime", index, f"{value!r} is not a date/time")
            elif value.utcoffset() != timedelta(0):
                report.add("DateTimeFormat.UTC", index, f"{name} {value.isoformat()} is not in UTC")
            elif value.microsecond:
                report.add("DateTimeFormat.Seconds", index, f"{name} {value.isoformat()} has a fraction of a second")
        elif not isinstance(value, str):
            report.add(f"{name}.String", index, f"{value!r} is not a string")
        elif value == "":
            report.add("NullHandling.EmptyString", index, f"{name} is an empty string (use null)")
        elif not value.strip() and name in NOT_NULL:
            report.add("StringHandling.Blank", index, f"{name} is only spaces")
    if "Tags" in row and row["Tags"] is not None:
        _check_key_value(row["Tags"], index, report)

    category = row.get("ChargeCategory")
    charge_class = row.get("ChargeClass")
    correction = charge_class == "Correction"
    if category is not None and category not in CHARGE_CATEGORIES:
        report.add("ChargeCategory.Allowed", index, f"{category!r} is not an allowed value")
    if charge_class is not None and charge_class not in CHARGE_CLASSES:
        report.add("ChargeClass.Allowed", index, f"{charge_class!r} is not null or 'Correction'")
    service = row.get("ServiceCategory")
    if service is not None and service not in SERVICE_CATEGORIES:
        report.add("ServiceCategory.Allowed", index, f"{service!r} is not an allowed value")
    currency = row.get("BillingCurrency")
    if isinstance(currency, str) and not CURRENCY_TEXT.fullmatch(currency):
        report.add("BillingCurrency.CurrencyFormat", index, f"{currency!r} is not an ISO 4217 code")
    if "ChargeDescription" in row and row["ChargeDescription"] is None:
        report.add("ChargeDescription.ShouldNotBeNull", index, "is null")

    # Conditional nullability (CommitmentDiscountStatus absent: never "Unused").
    unused = row.get("CommitmentDiscountStatus") == "Unused"
    if "ConsumedQuantity" in row:
        quantity = row["ConsumedQuantity"]
        if category != "Usage" and quantity is not None:
            report.add("ConsumedQuantity.Nullability", index, f"must be null for ChargeCategory {category!r}")
        if category == "Usage" and not unused and not correction and quantity is None:
            report.add("ConsumedQuantity.Nullability", index, "must not be null for Usage")
    if "ConsumedUnit" in row and (row["ConsumedUnit"] is None) != (row.get("ConsumedQuantity") is None):
        report.add("ConsumedUnit.Nullability", index, "must be null exactly when ConsumedQuantity is")
    for name in ("PricingQuantity", "ListUnitPrice", "ContractedUnitPrice", "SkuId", "SkuPriceId", "PricingCategory"):
        if name not in row:
            continue
        if category == "Tax" and row[name] is not None:
            report.add(f"{name}.Nullability", index, "must be null for Tax")
        if category in ("Usage", "Purchase") and not correction and row[name] is None:
            report.add(f"{name}.Nullability", index, f"must not be null for {category}")
    if "PricingUnit" in row and (row["PricingUnit"] is None) != (row.get("PricingQuantity") is None):
        report.add("PricingUnit.Nullability", index, "must be null exactly when PricingQuantity is")
    for name in ("PricingUnit", "ConsumedUnit"):
        unit = row.get(name)
        if isinstance(unit, str) and unit and not UNIT_TEXT.fullmatch(unit):
            report.add("UnitFormat", index, f"{name} {unit!r} does not follow the Unit Format")

    # Prices and costs.
    quantity = row.get("PricingQuantity")
    for price_name, cost_name in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
        price = row.get(price_name)
        if not isinstance(price, Decimal) or not price.is_finite():
            continue
        if price < 0:
            report.add(f"{price_name}.NonNegative", index, f"{price} is negative")
        cost = row.get(cost_name)
        if isinstance(quantity, Decimal) and quantity.is_finite() and isinstance(cost, Decimal) and not correction:
            product = _exact_product(price, quantity)
            if product != cost:
                report.add(
                    f"{cost_name}.Product",
                    index,
                    f"{cost_name} {cost} is not {price_name} {price} × PricingQuantity {quantity} = {product}",
                )

    # Periods: start inclusive, end exclusive; the charge period inside the billing period.
    values: dict[str, Any] = {name: row.get(name) for name in DATETIME}
    if all(isinstance(v, datetime) and v.utcoffset() is not None for v in values.values()):
        if not values["ChargePeriodStart"] < values["ChargePeriodEnd"]:
            report.add("ChargePeriod.Order", index, "ChargePeriodStart is not before ChargePeriodEnd")
        if not values["BillingPeriodStart"] < values["BillingPeriodEnd"]:
            report.add("BillingPeriod.Order", index, "BillingPeriodStart is not before BillingPeriodEnd")
        if not (
            values["BillingPeriodStart"] <= values["ChargePeriodStart"]
            and values["ChargePeriodEnd"] <= values["BillingPeriodEnd"]
        ):
            report.add("ChargePeriod.InBillingPeriod", index, "the charge period is not inside the billing period")


def check_rows(rows: Iterable[Mapping[str, Any]], *, allow: Collection[str] = ()) -> list[str]:
    """The FOCUS 1.2 rules broken by typed rows (Decimal, aware datetime, str, None), as lines."""
    report = _Report(allow)
    columns: list[str] | None = None
    account_names: dict[object, object] = {}
    for index, row in enumerate(rows):
        if columns is None:
            columns = list(row)
            _check_columns(columns, report)
        _check_row(index, row, columns, report)
        account = row.get("BillingAccountId")
        if account is not None:
            name = account_names.setdefault(account, row.get("BillingAccountName"))
            if name != row.get("BillingAccountName"):
                report.add("BillingAccountName.Consistent", index, f"account {account!r} has two names")
    return report.result()


def _typed_cell(name: str, text: str, index: int, report: _Report) -> Any:
    if text == "":
        return None
    if name in DECIMAL:
        if not NUMERIC_TEXT.fullmatch(text):
            report.add("NumericFormat", index, f"{name} {text!r} is not in the Numeric Format")
            return Decimal("NaN")
        try:
            return Decimal(text)
        except InvalidOperation:
            report.add("NumericFormat", index, f"{name} {text!r} is not a number")
            return Decimal("NaN")
    if name in DATETIME:
        if not DATETIME_TEXT.fullmatch(text):
            report.add("DateTimeFormat", index, f"{name} {text!r} is not YYYY-MM-DDTHH:mm:ssZ")
            return text
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return text


def csv_rows(text: str, report: _Report | None = None) -> list[dict[str, Any]]:
    """Typed rows of a FOCUS CSV (empty cell = null); format breaks go to ``report`` when given."""
    sink = report or _Report(())
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    rows = []
    for index, cells in enumerate(reader):
        if len(cells) != len(header):
            sink.add("CSV.Shape", index, f"{len(cells)} cells for {len(header)} columns")
            continue
        rows.append({name: _typed_cell(name, cell, index, sink) for name, cell in zip(header, cells, strict=True)})
    return rows


def check_csv(text: str, *, allow: Collection[str] = ()) -> list[str]:
    """The FOCUS 1.2 rules broken by a CSV export: cell formats, then the rows' rules."""
    report = _Report(allow)
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    _check_columns(header, report)
    rows = csv_rows(text, report)
    return report.result() + [line for line in check_rows(rows, allow=allow) if not line.startswith("Columns.")]


def check_parquet(path: str | Path, *, allow: Collection[str] = ()) -> list[str]:
    """The FOCUS 1.2 rules broken by a Parquet export: column types, then the rows' rules."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    report = _Report(allow)
    table = pq.read_table(str(path))
    for field in table.schema:
        if field.name in DECIMAL and not pa.types.is_decimal(field.type):
            report.add(f"{field.name}.Decimal", None, f"Parquet type {field.type} is not a decimal")
        elif field.name in DATETIME and not (pa.types.is_timestamp(field.type) and field.type.tz in ("UTC", "+00:00")):
            report.add(f"{field.name}.DateTime", None, f"Parquet type {field.type} is not a UTC timestamp")
        elif field.name not in DECIMAL | DATETIME and not (
            pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        ):
            report.add(f"{field.name}.String", None, f"Parquet type {field.type} is not a string")
    return report.result() + check_rows(table.to_pylist(), allow=allow)


# -- The contract's own rules (DESIGN.md, "Figures for other tools"), beyond the specification's.

UNITS = {
    "input": "Tokens",
    "cached_input": "Tokens",
    "cache_write": "Tokens",
    "cache_write_1h": "Tokens",
    "output": "Tokens",
    "reasoning": "Tokens",
    "web_search": "Searches",
    "request": "Requests",
}
CONTRACT_COLUMNS = sorted(
    MANDATORY | {"ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "SkuId", "SkuPriceId", "Tags"}
) + [
    "x_ServiceTier",
    "x_TokenType",
]
# The contract's Tags value carries an array, which the spec's Key-Value Format forbids: a known departure.
CONTRACT_DEPARTURES = frozenset({"Tags.ScalarValues"})


def _first_of_month(moment: datetime) -> bool:
    return moment.day == 1 and moment.time() == datetime.min.time()


def check_spendboard_rows(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The contract's rules for the export's rows (fixed values, calendar month, UTC day, units, Tags shape)."""
    report = _Report(())
    for index, row in enumerate(rows):
        if list(row) != CONTRACT_COLUMNS:
            report.add("Spendboard.Columns", index, f"columns {list(row)} are not the contract's {CONTRACT_COLUMNS}")
            continue
        fixed = {
            "BillingCurrency": "USD",
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ServiceCategory": "AI and Machine Learning",
        }
        for name, expected in fixed.items():
            if row[name] != expected:
                report.add("Spendboard.Fixed", index, f"{name} is {row[name]!r}, not {expected!r}")
        provider = row["ProviderName"]
        if not (row["InvoiceIssuerName"] == row["PublisherName"] == provider):
            report.add("Spendboard.Provider", index, "InvoiceIssuerName, ProviderName, PublisherName differ")
        if not (isinstance(row["SkuId"], str) and row["SkuId"].startswith(f"{provider}/")):
            report.add("Spendboard.SkuId", index, f"SkuId {row['SkuId']!r} is not provider/model")
        sku_price = f"{row['SkuId']}/{row['x_ServiceTier']}/{row['x_TokenType']}"
        if row["SkuPriceId"] != sku_price:
            report.add("Spendboard.SkuPriceId", index, f"SkuPriceId {row['SkuPriceId']!r} is not {sku_price!r}")
        costs = {row[name] for name in ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost")}
        if len(costs) != 1:
            report.add("Spendboard.Costs", index, f"Billed, Effective, Contracted and List costs differ: {costs}")
        if row["PricingQuantity"] != row["ConsumedQuantity"] or row["PricingUnit"] != row["ConsumedUnit"]:
            report.add("Spendboard.Quantity", index, "pricing and consumed quantity or unit differ")
        if UNITS.get(row["x_TokenType"]) != row["ConsumedUnit"]:
            report.add("Spendboard.Unit", index, f"{row['x_TokenType']!r} rows are not in {row['ConsumedUnit']!r}")
        start, end = row["ChargePeriodStart"], row["ChargePeriodEnd"]
        if start.time() != datetime.min.time() or end - start != timedelta(days=1):
            report.add("Spendboard.ChargePeriodDay", index, f"{start} - {end} is not one UTC day")
        b_start, b_end = row["BillingPeriodStart"], row["BillingPeriodEnd"]
        month_after = date(b_start.year + b_start.month // 12, b_start.month % 12 + 1, 1)
        if not (_first_of_month(b_start) and _first_of_month(b_end) and b_end.date() == month_after):
            report.add("Spendboard.BillingPeriodMonth", index, f"{b_start} - {b_end} is not a calendar month")
        try:
            tags = json.loads(row["Tags"])
        except (TypeError, ValueError):
            tags = None
        if not (
            isinstance(tags, dict)
            and list(tags) == ["project", "tags"]
            and (tags["project"] is None or isinstance(tags["project"], str))
            and isinstance(tags["tags"], list)
            and all(isinstance(t, str) for t in tags["tags"])
            and tags["tags"] == sorted(set(tags["tags"]))
        ):
            report.add("Spendboard.Tags", index, f"{row['Tags']!r} is not {{'project': P|null, 'tags': [sorted]}}")
    return report.result()
