"""The Pricing page's tables, as pure functions (no Streamlit): every rate per 1M tokens, the service tier."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from core.money import format_per_million, format_usd
from core.pricing.versions import RATE_FIELDS, PriceChange, PriceRow, PriceTier

SHORT = {
    "input_token_cost": "Input",
    "output_token_cost": "Output",
    "cached_input_token_cost": "Cached input",
    "cache_write_token_cost": "Cache write 5m",
    "cache_write_1h_token_cost": "Cache write 1h",
    "reasoning_token_cost": "Reasoning",
    "cost_per_web_search": "Per web search",
    "cost_per_request": "Per request",
}


def _money(column: str, value: object) -> str:
    if value is None:
        return "-"
    per_token = next(f.per_token for f in RATE_FIELDS if f.column == column)
    return format_per_million(value) if per_token else format_usd(value)  # type: ignore[arg-type]


def tiers_text(tiers: tuple[PriceTier, ...]) -> str:
    """``above 200,000: input $2.50 / 1M tokens, output $15.00 / 1M tokens``; tiers joined by ``; ``."""
    return "; ".join(
        f"above {t.above_input_tokens:,}: " + ", ".join(f"{SHORT[c].lower()} {_money(c, v)}" for c, v in t.rates)
        for t in tiers
    )


def since_text(moment: datetime, tz: ZoneInfo) -> str:
    if moment <= datetime(1970, 1, 2, tzinfo=UTC):
        return "always"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def prices_table(rows: list[PriceRow], tz: ZoneInfo) -> pd.DataFrame:
    """Current prices per 1M tokens (per search and per call as they are), with tier, source and since when."""
    data: dict[str, list[object]] = {
        "Provider": [r.provider for r in rows],
        "Model": [r.model_name for r in rows],
        "Service tier": [r.service_tier for r in rows],
    }
    for spec in RATE_FIELDS:
        data[SHORT[spec.column]] = [_money(spec.column, r.rate(spec.column)) for r in rows]
    data["Long-context tiers"] = [tiers_text(r.tiers) or "-" for r in rows]
    data["Source"] = [r.source for r in rows]
    data["Since"] = [since_text(r.effective_from, tz) for r in rows]
    return pd.DataFrame(data)


def price_text(row: PriceRow) -> str:
    """Every rate a version sets, in words (retired versions say so)."""
    if row.retired:
        return "retired"
    parts = [f"{SHORT[c].lower()} {_money(c, row.rate(c))}" for c in SHORT if row.rate(c) is not None]
    if row.tiers:
        parts.append(tiers_text(row.tiers))
    return ", ".join(parts)


def history_table(changes: list[PriceChange], tz: ZoneInfo) -> pd.DataFrame:
    """Every price version, newest first: who, when, old -> new."""
    return pd.DataFrame(
        {
            "When": [c.version.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") for c in changes],
            "Who": [c.version.changed_by or c.version.source for c in changes],
            "Provider": [c.version.provider for c in changes],
            "Model": [c.version.model_name for c in changes],
            "Service tier": [c.version.service_tier for c in changes],
            "Old": [price_text(c.previous) if c.previous else "-" for c in changes],
            "New": [price_text(c.version) for c in changes],
            "In force from": [since_text(c.version.effective_from, tz) for c in changes],
            "Source": [c.version.source for c in changes],
            "Note": [c.version.note or "" for c in changes],
        }
    )


def matching_changes(changes: list[PriceChange], text: str = "") -> list[PriceChange]:
    """The history rows a search shows: every word of ``text`` in the provider, model, tier, who, source or note."""
    words = [w for w in text.lower().split() if w]
    if not words:
        return changes
    found = []
    for c in changes:
        v = c.version
        haystack = f"{v.provider} {v.model_name} {v.service_tier} {v.changed_by or ''} {v.source} {v.note or ''}"
        if all(w in haystack.lower() for w in words):
            found.append(c)
    return found


def matching_prices(
    rows: list[PriceRow], text: str = "", provider: str | None = None, source: str | None = None
) -> list[PriceRow]:
    """The rows a search shows: every word of ``text`` in the provider, model or tier (any case), and the chosen
    provider and source. Pure, so a catalog of thousands of models is filtered in microseconds per row."""
    words = [w for w in text.lower().split() if w]
    found = []
    for row in rows:
        if provider and row.provider != provider:
            continue
        if source and row.source != source:
            continue
        haystack = f"{row.provider} {row.model_name} {row.service_tier}".lower()
        if all(word in haystack for word in words):
            found.append(row)
    return found
