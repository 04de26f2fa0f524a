"""The seeded catalog of public prices, shipped as ``core/catalog/catalog.csv`` (USD per 1M tokens)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from core.money import MAX_REQUEST_PRICE, MAX_TOKEN_PRICE, parse_amount, per_token

CATALOG_PATH = Path(__file__).with_name("catalog.csv")


@dataclass(frozen=True)
class CatalogPrice:
    provider: str
    model_name: str
    input_token_cost: Decimal  # USD per token
    output_token_cost: Decimal
    cached_input_token_cost: Decimal | None
    cost_per_request: Decimal | None
    source: str
    as_of: str
    note: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model_name)


def load_catalog(path: Path = CATALOG_PATH) -> list[CatalogPrice]:
    prices: list[CatalogPrice] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{path.name} line {line}"

            def rate(column: str, row: dict[str, str] = row, where: str = where) -> Decimal | None:
                text = (row.get(column) or "").strip()
                if not text:
                    return None
                return per_token(parse_amount(text, f"{where} {column}", maximum=MAX_TOKEN_PRICE * 1_000_000))

            input_cost, output_cost = rate("input_per_1m"), rate("output_per_1m")
            if input_cost is None or output_cost is None:
                raise ValueError(f"{where}: input_per_1m and output_per_1m are required")
            request_text = (row.get("cost_per_request") or "").strip()
            prices.append(
                CatalogPrice(
                    provider=row["provider"].strip().lower(),
                    model_name=row["model_name"].strip(),
                    input_token_cost=input_cost,
                    output_token_cost=output_cost,
                    cached_input_token_cost=rate("cached_input_per_1m"),
                    cost_per_request=parse_amount(request_text, f"{where} cost_per_request", maximum=MAX_REQUEST_PRICE)
                    if request_text
                    else None,
                    source=(row.get("source") or "").strip(),
                    as_of=(row.get("as_of") or "").strip(),
                    note=(row.get("note") or "").strip(),
                )
            )
    return prices
