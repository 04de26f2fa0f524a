"""``prices sync``: the genai-prices catalog as versions; idempotent, dry-run, edits survive."""

from __future__ import annotations

import dataclasses
import inspect
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice
from sqlalchemy import Engine, func, select

import core.cli.main as cli
from core.pricing.catalog import load_catalog
from core.pricing.catalog.package import convert, match_rule
from core.pricing.catalog.sync import sync_package
from core.pricing.edits import PriceEdit, save_price
from core.pricing.lookup import calculate_cost
from core.pricing.providers import canonical_provider
from core.pricing.seeding import initialize_default_pricing
from core.storage.tables import PriceVersion

SEED = ("huggingface", "openai/gpt-oss-120b:groq")


def _count(engine: Engine, **where: str) -> int:
    query = select(func.count()).select_from(PriceVersion)
    for name, value in where.items():
        query = query.where(getattr(PriceVersion, name) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _in_force_row(engine: Engine, provider: str, model: str, tier: str = "standard") -> Any:
    now = datetime.now(UTC)
    with engine.connect() as conn:
        return conn.execute(
            select(PriceVersion.__table__)
            .where(
                PriceVersion.provider == provider,
                PriceVersion.model_name == model,
                PriceVersion.service_tier == tier,
                PriceVersion.effective_from <= now,
            )
            .order_by(PriceVersion.effective_from.desc(), PriceVersion.id.desc())
            .limit(1)
        ).one()


def test_init_writes_the_package_catalog_with_history_tiers_and_service_tiers(engine: Engine) -> None:
    conversion = convert()
    assert conversion.models_priced >= 1900
    assert _count(engine, source="package") == len(conversion.versions)
    # a dated price change is its own version; the first from the beginning of time
    with engine.connect() as conn:
        rows = conn.execute(
            select(PriceVersion.effective_from, PriceVersion.service_tier, PriceVersion.tiers, PriceVersion.match_rule)
            .where(PriceVersion.provider == "anthropic", PriceVersion.model_name == "claude-sonnet-4-5")
            .order_by(PriceVersion.effective_from)
        ).all()
    assert rows[0].effective_from.year == 1970
    assert {r.service_tier for r in rows} >= {"standard", "batch"}
    tiers = json.loads(rows[0].tiers)
    assert tiers[0]["above_input_tokens"] == 200_000 and tiers[0]["input_token_cost"] == "0.000006"
    assert json.loads(rows[0].match_rule) == match_rule(
        next(
            m
            for p in data_snapshot.get_snapshot().providers
            if p.id == "anthropic"
            for m in p.models
            if m.id == "claude-sonnet-4-5"
        ).match
    )
    # rates are explicit: gpt-4o has no cache-write price, so writes cost input (as in the package)
    gpt4o = _in_force_row(engine, "openai", "gpt-4o")
    assert gpt4o.input_token_cost == Decimal("0.0000025") and gpt4o.cache_write_token_cost == Decimal("0.0000025")
    assert gpt4o.cost_per_web_search == Decimal("0.01") and gpt4o.source == "package"


def test_skipped_models_are_counted_per_reason() -> None:
    conversion = convert()
    skipped = conversion.skipped
    assert skipped["characters"] >= 1 and skipped["audio hours"] >= 1 and skipped["document pages"] >= 1
    assert skipped["time-of-day prices"] >= 1
    assert "openai/tts-1" in conversion.skipped_models["characters"]
    assert "deepseek/deepseek-chat" in conversion.skipped_models["time-of-day prices"]
    priced = {(v.provider, v.model_name) for v in conversion.versions}
    assert ("openai", "tts-1") not in priced and ("deepseek", "deepseek-chat") not in priced


def test_sync_is_idempotent(engine: Engine) -> None:
    count = _count(engine)
    assert sync_package(engine).versions_written == 0
    assert initialize_default_pricing(engine) == []
    assert _count(engine) == count


def test_dry_run_writes_nothing_and_says_what_would_change(empty_engine: Engine) -> None:
    result = sync_package(empty_engine, dry_run=True)
    assert result.dry_run and result.versions_written == len(convert().versions)
    assert result.lines()[0].startswith(f"genai-prices {convert().package_version}: would write")
    assert _count(empty_engine) == 0


def test_cli_sync_dry_run_json(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli.main(["prices", "sync", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["versions_written"] > 2000 and out["skipped"]["characters"] >= 1
    assert cli.main(["prices", "sync"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["prices", "sync"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_the_seed_and_huggingface_keep_their_meaning(engine: Engine) -> None:
    b = calculate_cost(engine, *SEED, 1000, 500)
    assert (b.matched_by, b.cost_total) == ("exact", Decimal("0.0025"))
    assert all(canonical_provider(item.provider) == item.provider for item in load_catalog())


def test_form_edit_survives_init_and_sync_until_the_package_price_changes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_price(engine, PriceEdit("openai", "gpt-4o", "2", "8", changed_by="alice"))
    assert initialize_default_pricing(engine) == []
    assert sync_package(engine).versions_written == 0
    assert _in_force_row(engine, "openai", "gpt-4o").source == "form"

    providers = data_snapshot.get_snapshot().providers
    openai = next(p for p in providers if p.id == "openai")
    models = [
        dataclasses.replace(m, prices=ModelPrice(input_mtok=Decimal(3), output_mtok=Decimal(12)))
        if m.id == "gpt-4o"
        else m
        for m in openai.models
    ]
    changed = [dataclasses.replace(p, models=models) if p is openai else p for p in providers]
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", data_snapshot.DataSnapshot(changed, False))

    dry = sync_package(engine, dry_run=True)
    assert dry.versions_written >= 1 and any("openai/gpt-4o:" in line for line in dry.lines())
    assert _in_force_row(engine, "openai", "gpt-4o").source == "form"  # dry: nothing written

    changes = initialize_default_pricing(engine)
    assert any(
        "openai/gpt-4o: package price input $2.50 / 1M tokens, output $10.00 / 1M tokens -> "
        "input $3.00 / 1M tokens, output $12.00 / 1M tokens, from now" in line
        for line in changes
    )
    row = _in_force_row(engine, "openai", "gpt-4o")
    assert (row.source, row.input_token_cost, row.output_token_cost) == (
        "package",
        Decimal("0.000003"),
        Decimal("0.000012"),
    )
    assert sync_package(engine).versions_written == 0  # applied once


@pytest.mark.skipif(
    "service_tier" not in inspect.signature(calculate_cost).parameters,
    reason="core.pricing has not the release-2 lookup (alias, service tiers) yet (the lead's branch)",
)
def test_a_dated_model_id_resolves_through_alias(engine: Engine) -> None:
    b = calculate_cost(engine, "anthropic", "claude-sonnet-4-5-20250929", 100_000, 0)
    assert b.matched_by == "alias" and "claude-sonnet-4-5" in b.reason
    assert b.cost_total == Decimal("0.3")  # $3 / 1M input, under the 200k tier
    above = calculate_cost(engine, "anthropic", "claude-sonnet-4-5-20250929", 200_001, 0)
    assert above.cost_total == Decimal("200001") * Decimal("0.000006")  # the whole call at the tier's rate
    assert calculate_cost(engine, "openai", "gpt-4o", 1000, 0).matched_by == "exact"


def test_a_dated_price_change_in_a_newer_package_is_a_version_from_its_date(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genai_prices.types import ConditionalPrice, StartDateConstraint

    providers = data_snapshot.get_snapshot().providers
    openai = next(p for p in providers if p.id == "openai")
    old = ModelPrice(input_mtok=Decimal("2.5"), output_mtok=Decimal(10), cache_read_mtok=Decimal("1.25"))
    new = ModelPrice(input_mtok=Decimal(2), output_mtok=Decimal(8), cache_read_mtok=Decimal(1))
    dated = [ConditionalPrice(prices=old), ConditionalPrice(StartDateConstraint(date(2026, 11, 1)), prices=new)]
    models = [
        dataclasses.replace(m, prices=dated, price_variants=None) if m.id == "gpt-4o" else m for m in openai.models
    ]
    changed = [dataclasses.replace(p, models=models) if p is openai else p for p in providers]
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", data_snapshot.DataSnapshot(changed, False))

    result = sync_package(engine)
    assert any(line.startswith("openai/gpt-4o: package price") and "from 2026-11-01" in line for line in result.changed)
    before = calculate_cost(engine, "openai", "gpt-4o", 1_000_000, 0, at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    after = calculate_cost(engine, "openai", "gpt-4o", 1_000_000, 0, at=datetime(2026, 11, 1, tzinfo=UTC))
    assert (before.cost_total, after.cost_total) == (Decimal("2.5"), Decimal(2))
    assert sync_package(engine).versions_written == 0


def test_a_compact_dated_id_is_priced_by_its_dashed_date(engine: Engine) -> None:
    """``gpt-4o-20240806`` is ``gpt-4o-2024-08-06`` (the package's own fallback), not the $1/1M estimate."""
    from core.pricing.lookup import calculate_cost

    b = calculate_cost(engine, "openai", "gpt-4o-20240806", 1000, 100)
    assert b.matched_by == "alias"
    assert b.cost_total == calculate_cost(engine, "openai", "gpt-4o-2024-08-06", 1000, 100).cost_total
    assert calculate_cost(engine, "moonshot", "kimi-k2-0905-preview", 1000, 100).matched_by != "estimate"
