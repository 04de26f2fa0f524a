"""FOCUS 1.2 rows from aggregated spend, and their CSV and Parquet files.

Produces FOCUS (FinOps Open Cost and Usage Specification) version 1.2
(github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag ``v1.2``,
``specification/columns/*.md``), one row per UTC day, provider, model, service
tier, project, tag set and token type (DESIGN.md, "Figures for other tools").

Columns, FOCUS ones first and sorted, custom ones (``x_`` prefix) last, as the
spec's Column Handling attribute asks:

- the 21 mandatory columns of 1.2: BilledCost, BillingAccountId,
  BillingAccountName, BillingCurrency (``USD``), BillingPeriodEnd and
  BillingPeriodStart (the UTC calendar month of the day, end exclusive),
  ChargeCategory (``Usage``), ChargeClass (null: never a correction),
  ChargeDescription, ChargePeriodEnd and ChargePeriodStart (the UTC day, end
  exclusive), ContractedCost, EffectiveCost, InvoiceIssuerName, ListCost,
  PricingQuantity, PricingUnit, ProviderName, PublisherName, ServiceCategory
  (``AI and Machine Learning``), ServiceName;
- the conditional columns ConsumedQuantity, ConsumedUnit (``Tokens``,
  ``Searches`` or ``Requests``), ListUnitPrice, SkuId (``provider/model``),
  SkuPriceId (``provider/model/service tier/token type``: 1.2 wants it wherever SkuId is
  given) and Tags (``{"project": P or null, "tags": [sorted distinct tags]}``);
- the custom columns x_ServiceTier (the tier the calls asked for) and
  x_TokenType (which part of the bill the row prices).

Costs: prices are list prices with no negotiated or commitment discounts, so
BilledCost = EffectiveCost = ContractedCost = ListCost = ListUnitPrice ×
PricingQuantity, exactly; a group whose cost is not its unit price times its
quantity is refused (it mixes prices, so no single ListUnitPrice is true).
PricingUnit equals ConsumedUnit and PricingQuantity equals ConsumedQuantity:
prices are per token, per search or per call.

Known departure, kept because the contract fixes the shape: the spec's
Key-Value Format wants scalar values in Tags, and the contract's ``tags`` value
is an array.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, Inexact, localcontext
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from core.money import to_text

FOCUS_VERSION = "1.2"
BILLING_CURRENCY = "USD"
CHARGE_CATEGORY = "Usage"
SERVICE_CATEGORY = "AI and Machine Learning"
DEFAULT_ACCOUNT_ID = "spendboard"
DEFAULT_ACCOUNT_NAME = "Spendboard"
MONEY_DECIMALS = 12  # amounts and per-token prices are kept to the pico-dollar (core.money)

# token type -> (unit, what the row counts); units follow the spec's Unit Format (plural count nouns)
TOKEN_TYPES: dict[str, tuple[str, str]] = {
    "input": ("Tokens", "input tokens (uncached)"),
    "cached_input": ("Tokens", "cached input tokens (cache reads)"),
    "cache_write": ("Tokens", "cache write tokens (5-minute)"),
    "cache_write_1h": ("Tokens", "cache write tokens (1-hour)"),
    "output": ("Tokens", "output tokens (reasoning excluded)"),
    "reasoning": ("Tokens", "reasoning tokens"),
    "web_search": ("Searches", "web searches"),
    "request": ("Requests", "requests (per-call fee)"),
}
_SINGULAR = {"Tokens": "token", "Searches": "search", "Requests": "request"}

MANDATORY_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
CONDITIONAL_COLUMNS = ("ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "SkuId", "SkuPriceId", "Tags")
CUSTOM_COLUMNS = ("x_ServiceTier", "x_TokenType")
COLUMNS: tuple[str, ...] = tuple(sorted(MANDATORY_COLUMNS + CONDITIONAL_COLUMNS)) + CUSTOM_COLUMNS

DECIMAL_COLUMNS = frozenset(
    {
        "BilledCost",
        "ConsumedQuantity",
        "ContractedCost",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "PricingQuantity",
    }
)
DATETIME_COLUMNS = frozenset({"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"})


class FocusError(ValueError):
    """A group that cannot become a FOCUS row; the message names the field and the value."""


def _decimal_places(value: Decimal) -> int:
    """Significant decimal places: ``Decimal("0.50")`` has 1 (no rounding context involved)."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or not any(digits):
        return 0
    text = "".join(map(str, digits))
    return max(0, -exponent - (len(text) - len(text.rstrip("0"))))


def _exact_product(a: Decimal, b: Decimal) -> Decimal:
    """a × b with no rounding (the default context keeps 28 digits): raises rather than round."""
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.traps[Inexact] = True
        return a * b


@dataclass(frozen=True)
class FocusGroup:
    """One aggregated group of calls: a UTC day, a price key, a project and tag set, one token type.

    ``quantity`` counts tokens (searches for ``web_search``, calls for ``request``) and
    ``cost`` = ``unit_price`` × ``quantity`` exactly, both in USD.
    """

    day: date
    provider: str
    model: str
    service_tier: str
    project: str | None
    tags: tuple[str, ...]
    token_type: str
    quantity: int
    unit_price: Decimal
    cost: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.day, date) or isinstance(self.day, datetime):
            raise FocusError(f"day: {self.day!r} is not a date")
        for name in ("provider", "model", "service_tier"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise FocusError(f"{name}: {value!r} is not a non-empty text")
        if self.project is not None and (not isinstance(self.project, str) or not self.project.strip()):
            raise FocusError(f"project: {self.project!r} is neither null nor a non-empty text")
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) and t for t in self.tags):
            raise FocusError(f"tags: {self.tags!r} is not a tuple of non-empty texts")
        if self.token_type not in TOKEN_TYPES:
            raise FocusError(f"token_type: {self.token_type!r} is not one of {', '.join(TOKEN_TYPES)}")
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 0:
            raise FocusError(f"quantity: {self.quantity!r} is not a non-negative whole number")
        for name in ("unit_price", "cost"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise FocusError(f"{name}: {value!r} is not a finite Decimal")
            if _decimal_places(value) > MONEY_DECIMALS:
                raise FocusError(f"{name}: {value} has more than {MONEY_DECIMALS} decimal places")
        if self.unit_price < 0:
            raise FocusError(f"unit_price: {self.unit_price} is negative")
        try:
            product = _exact_product(self.unit_price, Decimal(self.quantity))
        except Inexact:
            raise FocusError(f"unit_price: {self.unit_price} × quantity {self.quantity} is too large") from None
        if product != self.cost:
            raise FocusError(
                f"cost: {self.cost} is not unit_price {self.unit_price} × quantity {self.quantity} "
                f"({self.provider}/{self.model} {self.day} {self.token_type}): the group mixes prices"
            )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def billing_period(day: date) -> tuple[datetime, datetime]:
    """The UTC calendar month holding ``day``: [first of the month, first of the next)."""
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return _midnight(start), _midnight(end)


def tags_json(project: str | None, tags: Iterable[str]) -> str:
    """The Tags cell: ``{"project": P or null, "tags": [sorted distinct tags]}`` as compact JSON text."""
    return json.dumps({"project": project, "tags": sorted(set(tags))}, ensure_ascii=False, separators=(",", ":"))


def _description(group: FocusGroup, unit: str, what: str) -> str:
    price = to_text(group.unit_price)
    return f"{group.model} {what}, {group.service_tier} tier, {price} USD per {_SINGULAR[unit]}"


def focus_row(
    group: FocusGroup, *, account_id: str = DEFAULT_ACCOUNT_ID, account_name: str | None = DEFAULT_ACCOUNT_NAME
) -> dict[str, Any]:
    """One FOCUS row (keys in :data:`COLUMNS` order): Decimals, aware UTC datetimes, texts and None."""
    unit, what = TOKEN_TYPES[group.token_type]
    billing_start, billing_end = billing_period(group.day)
    charge_start = _midnight(group.day)
    quantity = Decimal(group.quantity)
    values: dict[str, Any] = {
        "BilledCost": group.cost,
        "BillingAccountId": account_id,
        "BillingAccountName": account_name,
        "BillingCurrency": BILLING_CURRENCY,
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": CHARGE_CATEGORY,
        "ChargeClass": None,
        "ChargeDescription": _description(group, unit, what),
        "ChargePeriodEnd": charge_start + timedelta(days=1),
        "ChargePeriodStart": charge_start,
        "ConsumedQuantity": quantity,
        "ConsumedUnit": unit,
        "ContractedCost": group.cost,
        "EffectiveCost": group.cost,
        "InvoiceIssuerName": group.provider,
        "ListCost": _exact_product(group.unit_price, quantity),
        "ListUnitPrice": group.unit_price,
        "PricingQuantity": quantity,
        "PricingUnit": unit,
        "ProviderName": group.provider,
        "PublisherName": group.provider,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": f"{group.provider} API",
        "SkuId": f"{group.provider}/{group.model}",
        "SkuPriceId": f"{group.provider}/{group.model}/{group.service_tier}/{group.token_type}",
        "Tags": tags_json(group.project, group.tags),
        "x_ServiceTier": group.service_tier,
        "x_TokenType": group.token_type,
    }
    return {name: values[name] for name in COLUMNS}


def focus_rows(
    groups: Iterable[FocusGroup],
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    account_name: str | None = DEFAULT_ACCOUNT_NAME,
) -> Iterator[dict[str, Any]]:
    """FOCUS rows for ``groups``, lazily, in their order; groups with quantity 0 carry nothing and are skipped."""
    if not isinstance(account_id, str) or not account_id.strip():
        raise FocusError(f"account_id: {account_id!r} is not a non-empty text (BillingAccountId must not be null)")
    for group in groups:
        if group.quantity:
            yield focus_row(group, account_id=account_id, account_name=account_name)


@lru_cache(maxsize=1024)
def _time_text(value: datetime, column: str) -> str:
    if value.utcoffset() != timedelta(0) or value.microsecond:
        raise FocusError(f"{column}: {value.isoformat()} is not a whole-second UTC time")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: object, column: str) -> str:
    if type(value) is str:  # most cells
        return value
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return to_text(value)
    if isinstance(value, datetime):
        return _time_text(value, column)  # a few distinct days per export
    if isinstance(value, bool) or isinstance(value, float):
        raise FocusError(f"{column}: {value!r} is not a FOCUS value (Decimal, datetime, text or None)")
    return str(value)


def write_csv(rows: Iterable[Mapping[str, Any]], fileobj: IO[str]) -> int:
    """Write rows as CSV (header :data:`COLUMNS`); returns the number of rows.

    Decimals as plain exact text (``0.0000025``, never ``2.5E-6``), times as
    ``YYYY-MM-DDTHH:MM:SSZ``, null as an empty cell. Open ``fileobj`` with ``newline=""``.
    """
    writer = csv.writer(fileobj)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([_cell(row[name], name) for name in COLUMNS])
        count += 1
    return count


def parquet_schema() -> Any:
    """decimal128(38, 12) for amounts, prices and quantities; timestamp[us, UTC]; string."""
    import pyarrow as pa

    money = pa.decimal128(38, MONEY_DECIMALS)
    fields = []
    for name in COLUMNS:
        if name in DECIMAL_COLUMNS:
            kind = money
        elif name in DATETIME_COLUMNS:
            kind = pa.timestamp("us", tz="UTC")
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind, nullable=True))
    return pa.schema(fields, metadata={"FocusVersion": FOCUS_VERSION})


def write_parquet(rows: Iterable[Mapping[str, Any]], path: str | Path, *, batch_size: int = 50_000) -> int:
    """Write rows to a Parquet file, ``batch_size`` rows at a time (one row group each); returns the row count.

    Only one batch is held in memory, so an export of any length streams. A value finer than
    12 decimal places is refused by pyarrow rather than rounded.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if batch_size < 1:
        raise FocusError(f"batch_size: {batch_size!r} is not a positive number")
    schema = parquet_schema()
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        pending = 0
        for row in rows:
            for name in COLUMNS:
                columns[name].append(row[name])
            pending += 1
            if pending == batch_size:
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                count += pending
                columns = {name: [] for name in COLUMNS}
                pending = 0
        if pending:
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            count += pending
    return count
