"""The ``genai-prices`` package's catalog as Spendboard price versions.

Every provider and every model priced in units Spendboard bills (tokens, web searches,
requests) becomes versions of (provider, model, service tier):

- each dated price change (``StartDateConstraint``) its own version from its start date
  (00:00 UTC, as the package compares dates); the first from the beginning of time;
- ``TieredPrices`` -> the ``tiers`` JSON: the union of every key's thresholds, and at each
  threshold every rate that then differs from the base (a tier re-prices the whole call
  when the call's input tokens are strictly above its threshold, in both);
- ``price_variants`` for batch / flex / priority -> versions with that ``service_tier``;
- the model's ``match`` clause -> ``match_rule`` as the package writes it.

Every rate is written explicitly, with the value the package charges: where the package
has no cache-read price it counts cached tokens as plain input (``decompose.py``), so the
version's cache-read rate is the input rate; likewise cache writes (input rate), 1-hour
writes (the 5-minute write rate) and reasoning (the output rate). A version therefore
prices a call as ``genai_prices.calc_price`` does, whatever the fallbacks.

A model without any price is skipped (the estimate flags its calls), except a ``:free``
route, which the package prices at 0 and so is written at 0.
Models the package prices in units Spendboard does not bill (characters, audio, images,
video, pages, messages, ...) or by time of day are skipped and counted, never half-priced;
so are rates finer than 1e-12 USD per token (what ``core.money`` stores).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from core.money import MAX_REQUEST_PRICE, MAX_TOKEN_PRICE, to_text
from core.pricing.rates import RATE_FIELDS  # the rate columns of a version, in the order versions are compared
from core.times import BEGINNING_OF_TIME

SOURCE = "package"
CHANGED_BY = "genai-prices"


# Spendboard service tier -> the package's price context selecting its variant
SERVICE_TIERS: dict[str, dict[str, str]] = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}
# the package's "default" service tier is the standard price (its variants carry no prices)
STANDARD_WHEN = ({"service_tier": "default"},)

# price keys Spendboard bills (per 1M tokens, per 1,000 searches or requests)
BILLED_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
        "web_searches_kcount",
        "requests_kcount",
    }
)
# tool calls Spendboard's usage has no field for: the model's token prices are exact for
# every call Spendboard can record, so the model is priced and these prices are counted
NOT_RECORDED_TOOLS = {
    "storage_searches_kcount": "file-search (storage search) price",
    "social_searches_kcount": "social-search price",
    "code_executions_kcount": "code-execution price",
}

REASON_TIME_OF_DAY = "time-of-day prices"
REASON_NO_PRICE = "no price in the package"
REASON_TOO_FINE = "a rate finer than 1e-12 USD per token"
REASON_TOO_HIGH = "a rate above the sane maximum"
REASON_SHADOWED = "its id is priced by another model of the provider in the package"
REASON_TIER_GAP = "a tier without a rate the base has"


def unit_reason(price_key: str) -> str:
    """Why a price key cannot be billed by Spendboard, in words (the skip reason)."""
    key = f"_{price_key}_"
    if "mchars" in key:
        return "characters"
    if key.endswith("_hours_"):
        return "audio hours"
    if "gpixels" in key:
        return "images (pixels)"
    if "kpages" in key:
        return "document pages"
    if "messages" in key:
        return "messages"
    if "rerank" in key:
        return "rerank searches"
    for modality in ("audio", "image", "video"):
        if f"_{modality}_" in key:
            return f"{modality} tokens"
    if "citation" in key:
        return "citation tokens"
    return f"price unit {price_key}"


class _Unstorable(Exception):
    """A price Spendboard cannot store exactly; the message is the skip reason."""


@dataclass(frozen=True)
class PackageVersion:
    """One price version from the package, as it would be written."""

    provider: str
    model_name: str
    service_tier: str
    effective_from: datetime
    rates: tuple[Decimal | None, ...]  # in RATE_FIELDS order
    tiers: str | None
    match_rule: str | None
    note: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.model_name.lower(), self.service_tier)

    @property
    def values(self) -> tuple[object, ...]:
        """What decides whether the package's price changed: every rate, the tiers, the match rule."""
        return (*self.rates, self.tiers, self.match_rule)

    def row(self, created_at: datetime, effective_from: datetime | None = None) -> dict[str, object]:
        return {
            "provider": self.provider,
            "model_name": self.model_name,
            **dict(zip(RATE_FIELDS, self.rates, strict=True)),
            "service_tier": self.service_tier,
            "tiers": self.tiers,
            "match_rule": self.match_rule,
            "currency": "USD",
            "effective_from": effective_from or self.effective_from,
            "retired": False,
            "source": SOURCE,
            "changed_by": CHANGED_BY,
            "note": self.note,
            "created_at": created_at,
        }


@dataclass
class Conversion:
    """The package's catalog converted: versions, and what was skipped and why."""

    package_version: str
    versions: list[PackageVersion] = field(default_factory=list)
    models_priced: int = 0  # the providers' own models
    fallback_models: int = 0  # models a provider prices through another's (azure -> openai, ...)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> models
    skipped_models: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    not_carried: Counter[str] = field(default_factory=Counter)  # what was left out of priced models

    def summary(self) -> dict[str, Any]:
        return {
            "package": f"genai-prices {self.package_version}",
            "models_priced": self.models_priced,
            "fallback_models": self.fallback_models,
            "versions": len(self.versions),
            "skipped": dict(sorted(self.skipped.items())),
            "not_carried": dict(sorted(self.not_carried.items())),
        }


def _per(value: Decimal, per: int, key: str, maximum: Decimal) -> Decimal:
    rate = value / per
    if rate != 0:
        rate = rate.normalize()
    exponent = rate.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -12:
        raise _Unstorable(REASON_TOO_FINE)
    if rate > maximum:
        raise _Unstorable(REASON_TOO_HIGH)
    if exponent > 0:
        rate = rate.quantize(Decimal(1))
    return rate


def _applicable(price: Any, total_input_tokens: int) -> Decimal | None:
    """The package's rate for a key at a call's total input tokens (``calc_unit_price``)."""
    from genai_prices.types import TieredPrices

    if price is None:
        return None
    if isinstance(price, TieredPrices):
        applicable = price.base
        for tier in reversed(price.tiers):
            if total_input_tokens > tier.start:
                applicable = tier.price
                break
        return Decimal(applicable)
    return Decimal(price)


def _rates_at(prices: dict[str, Any], total_input_tokens: int) -> tuple[Decimal | None, ...]:
    """Every rate a call with this many input tokens pays, as the package decomposes usage."""

    def token(key: str) -> Decimal | None:
        value = _applicable(prices.get(key), total_input_tokens)
        return None if value is None else _per(value, 1_000_000, key, MAX_TOKEN_PRICE)

    def count(key: str) -> Decimal | None:
        value = _applicable(prices.get(key), total_input_tokens)
        return None if value is None else _per(value, 1_000, key, MAX_REQUEST_PRICE)

    input_rate = token("input_mtok") or Decimal(0)  # unpriced input is free in the package
    output_rate = token("output_mtok") or Decimal(0)
    cached = token("cache_read_mtok")
    write = token("cache_write_mtok")
    write_1h = token("cache_write_1h_mtok")
    reasoning = token("output_reasoning_mtok")
    write = input_rate if write is None else write  # an unpriced write is counted as input
    return (
        input_rate,
        output_rate,
        input_rate if cached is None else cached,
        write,
        write if write_1h is None else write_1h,  # an unpriced 1-hour write is a cache write
        output_rate if reasoning is None else reasoning,
        count("web_searches_kcount"),
        count("requests_kcount"),
    )


def convert_price(model_price: Any) -> tuple[tuple[Decimal | None, ...], str | None]:
    """A package ``ModelPrice`` -> (the base rates, the tiers JSON or None)."""
    from genai_prices.types import TieredPrices

    prices = {
        key: value
        for key, value in vars(model_price).items()
        if value is not None and not key.startswith("_") and key in BILLED_KEYS
    }
    thresholds = sorted(
        {tier.start for value in prices.values() if isinstance(value, TieredPrices) for tier in value.tiers}
    )
    base = _rates_at(prices, 0)
    tiers: list[dict[str, object]] = []
    for start in thresholds:
        rates = _rates_at(prices, start + 1)
        changed: dict[str, object] = {}
        for name, rate, base_rate in zip(RATE_FIELDS, rates, base, strict=True):
            if rate == base_rate:
                continue
            if rate is None:
                raise _Unstorable(REASON_TIER_GAP)
            changed[name] = to_text(rate)
        if changed:
            tiers.append({"above_input_tokens": start, **changed})
    return base, (json.dumps(tiers) if tiers else None)


def match_rule(clause: Any) -> dict[str, Any]:
    """The package's match clause as its JSON: ``{"equals": s}``, ``{"or": [...]}``, ..."""
    from genai_prices import types as gp

    if isinstance(clause, gp.ClauseOr):
        return {"or": [match_rule(item) for item in clause.or_]}
    if isinstance(clause, gp.ClauseAnd):
        return {"and": [match_rule(item) for item in clause.and_]}
    for name in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, name):
            return {name: getattr(clause, name)}
    raise ValueError(f"unknown match clause {clause!r}")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _start_dates(constraints: Iterable[Any]) -> set[date]:
    from genai_prices.types import StartDateConstraint

    return {c.start_date for c in constraints if isinstance(c, StartDateConstraint)}


def _timeline(model: Any, moments: Sequence[datetime], context: dict[str, str] | None) -> list[tuple[datetime, Any]]:
    """The package's resolved price at each moment, consecutive repeats dropped."""
    timeline: list[tuple[datetime, Any]] = []
    previous: tuple[object, ...] | None = None
    for moment in moments:
        resolved = convert_price(model.get_prices(moment, context))
        if resolved != previous:
            timeline.append((moment, resolved))
            previous = resolved
    return timeline


def _model_versions(
    provider_id: str, model: Any, note: str, with_tiers: bool
) -> tuple[list[PackageVersion], Counter[str]]:
    """The versions of one model (raises ``_Unstorable`` with the skip reason)."""
    from genai_prices import types as gp

    conditional = model.prices if isinstance(model.prices, list) else []
    standard_prices = [c.prices for c in conditional] if conditional else [model.prices]
    variants = list(model.price_variants or ())
    not_carried: Counter[str] = Counter()
    used_variants: list[Any] = []
    for variant in variants:
        if variant.when in STANDARD_WHEN and not _billed(variant.prices):
            continue
        if with_tiers and any(all(variant.when.get(k) == v for k, v in ctx.items()) for ctx in SERVICE_TIERS.values()):
            used_variants.append(variant)
        elif with_tiers:
            when = ", ".join(f"{k}={v}" for k, v in sorted(variant.when.items()))
            not_carried[f"price variant {when} (not a Spendboard service tier)"] += 1
    if any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in conditional) or any(
        isinstance(v.constraint, gp.TimeOfDateConstraint) for v in used_variants
    ):
        raise _Unstorable(REASON_TIME_OF_DAY)
    keys = {k for p in [*standard_prices, *(v.prices for v in used_variants)] for k in _billed_or_not(p)}
    unbillable = sorted(unit_reason(k) for k in keys if k not in BILLED_KEYS and k not in NOT_RECORDED_TOOLS)
    if unbillable:
        raise _Unstorable(unbillable[0])
    if not any(_billed(p) for p in standard_prices) and not model.id.lower().endswith(":free"):
        # no price at all: unknown (a retired or unpublished model), so the estimate flags it;
        # a ``:free`` model (OpenRouter's free routes) is priced at 0, as the package prices it
        raise _Unstorable(REASON_NO_PRICE)
    for key in sorted(keys & NOT_RECORDED_TOOLS.keys()):
        not_carried[NOT_RECORDED_TOOLS[key] + " (no such usage field)"] += 1

    rule = json.dumps(match_rule(model.match))
    changes = sorted(_start_dates(c.constraint for c in conditional))
    moments = [BEGINNING_OF_TIME, *(_midnight(d) for d in changes if _midnight(d) > BEGINNING_OF_TIME)]
    versions = [
        PackageVersion(provider_id, model.id, "standard", moment, rates, tiers, rule, note)
        for moment, (rates, tiers) in _timeline(model, moments, None)
    ]
    for tier, context in SERVICE_TIERS.items():
        matching = [v for v in used_variants if all(context.get(k) == val for k, val in v.when.items())]
        if not matching:
            continue
        starts = [getattr(v.constraint, "start_date", None) for v in matching]
        begin = BEGINNING_OF_TIME if None in starts else _midnight(min(d for d in starts if d is not None))
        dates = set(changes) | {d for d in starts if d is not None}
        tier_moments = [begin, *sorted(m for m in map(_midnight, dates) if m > begin)]
        versions.extend(
            PackageVersion(provider_id, model.id, tier, moment, rates, tiers, rule, note)
            for moment, (rates, tiers) in _timeline(model, tier_moments, context)
        )
    return versions, not_carried


def _billed_or_not(model_price: Any) -> set[str]:
    return {k for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}


def _billed(model_price: Any) -> bool:
    return bool(_billed_or_not(model_price) & BILLED_KEYS)


_cache: dict[int, tuple[Sequence[Any], Conversion]] = {}


def convert(providers: Sequence[Any] | None = None) -> Conversion:
    """Convert the package's providers (default: the installed package's data, converted once
    per process and snapshot)."""
    if providers is None:
        from genai_prices.data_snapshot import get_snapshot

        providers = get_snapshot().providers
        cached = _cache.get(id(providers))
        if cached is not None and cached[0] is providers:
            return cached[1]
        _cache.clear()
        _cache[id(providers)] = (providers, _convert(providers))
        return _cache[id(providers)][1]
    return _convert(providers)


def _convert(providers: Sequence[Any]) -> Conversion:
    import genai_prices

    result = Conversion(package_version=genai_prices.__version__)
    own_names: dict[str, set[str]] = {}
    by_id = {p.id: p for p in providers}

    def add(provider: Any, model: Any, note: str, with_tiers: bool) -> bool:
        name = f"{provider.id}/{model.id}"
        try:
            versions, not_carried = _model_versions(provider.id, model, note, with_tiers)
        except _Unstorable as exc:
            if with_tiers:  # a fallback copy's skip is counted at its own provider
                result.skipped[str(exc)] += 1
                result.skipped_models[str(exc)].append(name)
            return False
        result.versions.extend(versions)
        result.not_carried.update(not_carried)
        return True

    for provider in providers:
        names = own_names.setdefault(provider.id, set())
        for model in provider.models:
            found = provider.find_model(model.id)
            if found is not None and found is not model:  # the package prices this id with another model
                result.skipped[REASON_SHADOWED] += 1
                result.skipped_models[REASON_SHADOWED].append(f"{provider.id}/{model.id}")
                continue
            label = model.name or model.id
            if add(provider, model, f"genai-prices {result.package_version}: {label}", with_tiers=True):
                result.models_priced += 1
                names.add(model.id.lower())
    # a provider that prices other providers' models (azure -> openai, google -> anthropic):
    # the package uses the standard price there (it ignores service-tier variants)
    for provider in providers:
        taken = set(own_names.get(provider.id, set()))
        for fallback_id in provider.fallback_model_providers or ():
            fallback = by_id.get(fallback_id)
            if fallback is None:
                continue
            for model in fallback.models:
                lower = model.id.lower()
                if lower in taken or provider.find_model(model.id, all_providers=list(providers)) is not model:
                    continue
                taken.add(lower)
                label = model.name or model.id
                note = f"genai-prices {result.package_version}: {label} ({fallback_id}'s price, via {provider.id})"
                if add(provider, model, note, with_tiers=False):
                    result.fallback_models += 1
    return result
