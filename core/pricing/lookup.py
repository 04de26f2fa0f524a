"""The price lookup chain.

For (provider, model, time, service tier) the first hit wins: ``exact`` model name,
``short`` name (no ``org/`` prefix, no ``:route`` suffix), ``alias`` (a price row's
match rule, e.g. a dated model id), the provider's ``default`` row, the provider's
environment variables (``env``), then the ``estimate`` of USD 1 per 1M tokens. The
provider's other names (``gemini`` = ``google``) are tried at each step.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from core import config
from core.pricing.formula import CostBreakdown, breakdown
from core.pricing.providers import equivalent_providers
from core.pricing.rates import (
    ESTIMATE_PRICE,
    STANDARD,
    Price,
    PriceMatch,
    PricingError,
    normalize_provider,
    parse_service_tier,
    short_name,
)
from core.pricing.validation import _name, validate_usage
from core.storage.tables import PriceVersion
from core.times import BEGINNING_OF_TIME


def match_rule(rule: Any) -> Callable[[str], bool]:
    """A match clause (genai-prices' shape: equals, starts_with, ends_with, contains, regex, or, and) as a test.

    The model name given to the test is lower-cased by the caller.
    """
    if not isinstance(rule, dict) or len(rule) != 1:
        raise ValueError(f"match_rule: {rule!r} is not a match clause")
    ((kind, value),) = rule.items()
    if kind == "equals":
        wanted = str(value).lower()
        return lambda name: name == wanted
    if kind == "starts_with":
        prefix = str(value).lower()
        return lambda name: name.startswith(prefix)
    if kind == "ends_with":
        suffix = str(value).lower()
        return lambda name: name.endswith(suffix)
    if kind == "contains":
        part = str(value).lower()
        return lambda name: part in name
    if kind == "regex":
        pattern = re.compile(str(value))
        return lambda name: pattern.search(name) is not None
    if kind in ("or", "and"):
        tests = [match_rule(item) for item in value]
        if kind == "or":
            return lambda name: any(test(name) for test in tests)
        return lambda name: all(test(name) for test in tests)
    raise ValueError(f"match_rule: unknown clause {kind!r}")


Key = tuple[str, str, str]  # provider, model name lower-cased, service tier


COMPACT_DATE = re.compile(r"-(20\d\d)(\d\d)(\d\d)$")


class PriceIndex:
    """Every price version in memory, by (provider, model name, service tier), ordered by time."""

    def __init__(self, prices: list[Price]) -> None:
        grouped: dict[Key, list[Price]] = {}
        for price in prices:
            key = (normalize_provider(price.provider), price.model_name.strip().lower(), price.service_tier)
            grouped.setdefault(key, []).append(price)
        self._versions: dict[Key, tuple[list[float], list[Price]]] = {}
        rules: dict[str, list[tuple[int, str, Callable[[str], bool]]]] = {}
        for key, versions in grouped.items():
            versions.sort(key=lambda p: (_epoch(p.effective_from), p.pricing_id or 0))
            self._versions[key] = ([_epoch(p.effective_from) for p in versions], versions)
            latest_rule = next((p.match_rule for p in reversed(versions) if p.match_rule), None)
            if latest_rule and key[2] == STANDARD:
                try:
                    test = match_rule(json.loads(latest_rule))
                except (ValueError, TypeError, re.error):
                    continue  # a broken rule only loses its alias step, never the price itself
                first_id = min(p.pricing_id or 0 for p in versions)
                rules.setdefault(key[0], []).append((first_id, versions[-1].model_name, test))
        # rules in the order they were first stored (the package's order: its first match wins)
        self._rules = {
            provider: [(name, test) for _i, name, test in sorted(found, key=lambda r: (r[0], r[1]))]
            for provider, found in rules.items()
        }
        self.providers = sorted({key[0] for key in self._versions})
        self._short_cache: dict[str, str] = {}
        self._alias_cache: dict[tuple[str, str], str | None] = {}

    def version_at(self, provider: str, model_name: str, at: datetime, tier: str = STANDARD) -> Price | None:
        """The version in force at ``at`` (retired ones included), or ``None``."""
        entry = self._versions.get((provider, model_name.lower(), tier))
        if entry is None:
            return None
        times, versions = entry
        position = bisect_right(times, at.timestamp()) - 1
        return versions[position] if position >= 0 else None

    def change_times(self) -> list[float]:
        """Every instant at which some version takes effect (the lookup's answer changes only there)."""
        return sorted({t for times, _prices in self._versions.values() for t in times})

    def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        wanted = None if provider is None else set(equivalent_providers(provider))
        found = {
            (p, versions[-1].model_name)
            for (p, _m, _tier), (_t, versions) in self._versions.items()
            if wanted is None or p in wanted
        }
        return sorted(found)

    def _alias(self, provider: str, model: str) -> str | None:
        """The model name whose match rule accepts ``model`` (or its short name), memoised."""
        key = (provider, model)
        if key in self._alias_cache:
            return self._alias_cache[key]
        found = None
        rules = self._rules.get(provider)
        if rules:
            lowered = model.strip().lower()
            short = short_name(lowered)
            for candidate in (lowered, short) if short != lowered else (lowered,):
                found = next((name for name, test in rules if test(candidate)), None)
                if found is not None:
                    break
        if found is None:
            found = self._dated_alias(provider, model.strip().lower())
        self._alias_cache[key] = found
        return found

    def _dated_alias(self, provider: str, lowered: str) -> str | None:
        """A compact date suffix written with dashes, as the package does when nothing else matches:
        ``gpt-4o-20240806`` is ``gpt-4o-2024-08-06``."""
        dashed = COMPACT_DATE.sub(r"-\1-\2-\3", lowered)
        if dashed == lowered:
            return None
        entry = self._versions.get((provider, dashed, STANDARD))
        if entry is not None:
            return entry[1][-1].model_name
        return next((name for name, test in self._rules.get(provider, ()) if test(dashed)), None)

    def _in_force(self, provider: str, name: str, at: datetime, tier: str) -> tuple[Price | None, str]:
        """The tier's version of ``name`` when there is one, else the standard one; and a note."""
        if tier != STANDARD:
            tiered = self.version_at(provider, name, at, tier)
            if tiered is not None and not tiered.retired:
                return tiered, ""
        standard = self.version_at(provider, name, at, STANDARD)
        if standard is None and tier == STANDARD:
            return None, ""
        note = f"; no {tier} price for {provider}/{name}, standard rates used" if tier != STANDARD else ""
        return standard, note

    def lookup(self, provider: str, model: str, at: datetime, tier: str = STANDARD) -> PriceMatch:
        provider = normalize_provider(provider)
        model_clean = model.strip()
        short = self._short_cache.get(model)
        if short is None:
            short = self._short_cache.setdefault(model, short_name(model))
        retired_note = ""
        names = equivalent_providers(provider)
        for step in ("exact", "short", "alias", "default"):
            for name_provider in names:
                if step == "exact":
                    name: str | None = model_clean
                elif step == "short":
                    name = short if short.lower() != model_clean.lower() else None
                elif step == "alias":
                    name = self._alias(name_provider, model_clean)
                else:
                    name = "default"
                if name is None:
                    continue
                price, tier_note = self._in_force(name_provider, name, at, tier)
                if price is None:
                    continue
                if price.retired:
                    retired_note = f" ({name_provider}/{name} retired since {price.effective_from:%Y-%m-%d})"
                    continue
                reason = _reason(step, name_provider, name, price) + tier_note + retired_note
                return PriceMatch(step, price, reason)
        env = config.env_price(provider)
        if env is not None:
            price = Price(None, provider, "env", env.input_token_cost, env.output_token_cost, None, None, None, "env")
            return PriceMatch(
                "env",
                price,
                f"no price row for {provider}/{model}; from the environment "
                f"({env.variables[0]}, {env.variables[1]}){retired_note}",
            )
        return PriceMatch(
            "estimate",
            ESTIMATE_PRICE,
            f"no price for {provider}/{model} in the table or the "
            f"environment; estimated at $1 per 1M tokens{retired_note}",
        )


def _reason(step: str, provider: str, name: str, price: Price) -> str:
    if price.effective_from is None or price.effective_from <= BEGINNING_OF_TIME:
        since = "in force from the beginning"
    else:
        since = f"since {price.effective_from:%Y-%m-%d %H:%M} UTC"
    where = {
        "exact": "the exact model name",
        "short": "the short model name",
        "alias": "the model's match rule (an alias or dated id)",
        "default": "the provider's default row",
    }[step]
    tier = f", {price.service_tier} tier" if price.service_tier != STANDARD else ""
    return f"price row #{price.pricing_id} for {provider}/{name}{tier}: {where}, source {price.source}, {since}"


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


class PriceBook:
    """The in-memory index for one database, rebuilt when the price table changes.

    The table is append-only, so (row count, highest id) identifies its content;
    one cheap query per unit of work tells whether the index is current, also
    when another process saved a price.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[int, int] | None = None
        self._index = PriceIndex([])

    def index(self, conn: Connection) -> PriceIndex:
        signature = tuple(conn.execute(select(func.count(), func.coalesce(func.max(PriceVersion.id), 0))).one())
        with self._lock:
            if signature != self._signature:
                versions = [Price.from_row(row) for row in _all_versions(conn)]
                self._index = PriceIndex(versions)
                self._signature = signature  # type: ignore[assignment]
            return self._index

    def invalidate(self) -> None:
        with self._lock:
            self._signature = None


def _all_versions(conn: Connection) -> list[PriceVersion]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as session:
        return list(session.scalars(select(PriceVersion)))


_books: weakref.WeakKeyDictionary[Engine, PriceBook] = weakref.WeakKeyDictionary()


_books_lock = threading.Lock()


def price_book(engine: Engine) -> PriceBook:
    """The engine's price book (one per engine, so per database)."""
    with _books_lock:
        book = _books.get(engine)
        if book is None:
            book = _books[engine] = PriceBook()
        return book


def now_utc() -> datetime:
    return datetime.now(UTC)


def calculate_cost(
    engine: Engine,
    provider: str,
    model: str,
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object = 0,
    at: datetime | None = None,
    *,
    cache_write_tokens: object = 0,
    cache_write_1h_tokens: object = 0,
    reasoning_tokens: object = 0,
    web_search_calls: object = 0,
    service_tier: object = STANDARD,
) -> CostBreakdown:
    """Price one call at ``at`` (default: now) without recording it."""
    provider_clean = normalize_provider(_name(provider, "provider"))
    model_clean = _name(model, "model")
    usage = validate_usage(
        input_tokens,
        output_tokens,
        cached_input_tokens,
        cache_write_tokens,
        cache_write_1h_tokens,
        reasoning_tokens,
        web_search_calls,
    )
    tier = parse_service_tier(service_tier)
    moment = at or now_utc()
    if moment.tzinfo is None:
        raise PricingError(f"at: {moment.isoformat()} has no time zone")
    with engine.connect() as conn:
        index = price_book(engine).index(conn)
    match = index.lookup(provider_clean, model_clean, moment, tier)
    return breakdown(
        match,
        provider_clean,
        model_clean,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage=usage,
        requested_service_tier=tier,
    )


def current_index(engine: Engine) -> PriceIndex:
    with engine.connect() as conn:
        return price_book(engine).index(conn)
