"""Seeding the price table: the shipped catalog, the genai-prices package and the environment's prices."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from core import config
from core.pricing.catalog import CatalogPrice, load_catalog
from core.pricing.lookup import price_book
from core.pricing.versions import (
    HUGGINGFACE,
    _describe,
    _insert_version,
    _key,
    _latest_by_key,
    _lock_prices,
    _pair,
    _versions,
    tiers_to_json,
)
from core.storage.engine import run_write
from core.times import BEGINNING_OF_TIME


def initialize_default_pricing(engine: Engine, catalog: list[CatalogPrice] | None = None) -> list[str]:
    """Seed the catalog and apply environment prices; idempotent; returns what changed.

    A catalog or environment value is applied only when it differs from the last
    value applied from that same source, so a form edit survives a restart until
    the catalog or the variable itself changes. Environment values are read (and
    validated) before anything is written.
    """
    catalog = load_catalog() if catalog is None else catalog
    env_targets = _env_targets(catalog)

    def work(conn: Connection) -> list[str]:
        _lock_prices(conn)
        now = datetime.now(UTC)
        versions = _versions(conn)
        current = _latest_by_key(versions)
        last_catalog = _latest_by_key(versions, "catalog")
        last_env = _latest_by_key(versions, "env")
        changes: list[str] = []
        fresh: set[tuple[str, str, str]] = set()
        added = 0
        for item in catalog:
            key = _key(item.provider, item.model_name)
            values = dict(
                provider=item.provider,
                model_name=item.model_name,
                input_token_cost=item.input_token_cost,
                output_token_cost=item.output_token_cost,
                cached_input_token_cost=item.cached_input_token_cost,
                cost_per_request=item.cost_per_request,
                source="catalog",
                changed_by="catalog",
                note=f"{item.source} ({item.as_of}) {item.note}".strip(),
            )
            if key not in current:
                _insert_version(conn, effective_from=BEGINNING_OF_TIME, **values)
                fresh.add(key)
                added += 1
                continue
            previous = last_catalog.get(key)
            catalog_values = (
                item.input_token_cost,
                item.output_token_cost,
                item.cached_input_token_cost,
                item.cost_per_request,
            )
            if previous is None or catalog_values != (
                previous.input_token_cost,
                previous.output_token_cost,
                previous.cached_input_token_cost,
                previous.cost_per_request,
            ):
                _insert_version(conn, effective_from=now, **values)
                changes.append(
                    f"{item.provider}/{item.model_name}: catalog price now {_describe(None, catalog_values[:2])}"
                )
        if added:
            changes.insert(0, f"added {added} catalog prices")
        seeded = {_key(c.provider, c.model_name): (c.input_token_cost, c.output_token_cost) for c in catalog}
        for (provider, model_name), env in env_targets.items():
            key = _key(provider, model_name)
            wanted = (env.input_token_cost, env.output_token_cost)
            previous_env = last_env.get(key)
            if previous_env is not None:
                if _pair(previous_env) == wanted:
                    continue
            elif seeded.get(key) == wanted:
                continue
            base = _latest_by_key(_versions(conn)).get(key)
            before = _pair(base) if base is not None else None
            _insert_version(
                conn,
                provider=provider,
                model_name=model_name,
                input_token_cost=wanted[0],
                output_token_cost=wanted[1],
                cached_input_token_cost=base.cached_input_token_cost if base else None,
                cost_per_request=base.cost_per_request if base else None,
                # the environment sets input and output; every other rate, the tiers and the
                # match rule stay as the version it replaces has them
                cache_write_token_cost=base.cache_write_token_cost if base else None,
                cache_write_1h_token_cost=base.cache_write_1h_token_cost if base else None,
                reasoning_token_cost=base.reasoning_token_cost if base else None,
                cost_per_web_search=base.cost_per_web_search if base else None,
                tiers=tiers_to_json(base.tiers) if base else None,
                match_rule=base.match_rule if base else None,
                effective_from=BEGINNING_OF_TIME if (key in fresh or base is None) else now,
                source="env",
                changed_by="environment",
                note=f"from {env.variables[0]} and {env.variables[1]}",
            )
            changes.append(
                f"{provider}/{model_name}: {_describe(before, wanted)} (from {env.variables[0]}, {env.variables[1]})"
            )
        return changes

    changes = run_write(engine, work)
    if changes:
        price_book(engine).invalidate()
    from core.pricing.catalog.sync import sync_package  # the genai-prices catalog, after the shipped rows

    changes.extend(sync_package(engine).lines())
    return changes


def _env_targets(catalog: list[CatalogPrice]) -> dict[tuple[str, str], config.EnvPrice]:
    """Which rows each environment price applies to: HuggingFace's catalog rows, and
    ``<PROVIDER>_...`` pairs to that provider's ``default`` row."""
    targets: dict[tuple[str, str], config.EnvPrice] = {}
    huggingface = config.env_price(HUGGINGFACE)
    assert huggingface is not None  # HuggingFace always has the seed's defaults
    for item in catalog:
        if item.provider == HUGGINGFACE:
            targets[(item.provider, item.model_name)] = huggingface
    for provider in config.env_priced_providers():
        if provider in config.SHARES_HUGGINGFACE_VARIABLES:
            continue
        env = config.env_price(provider)
        if env is not None:
            targets[(provider, "default")] = env
    return targets
