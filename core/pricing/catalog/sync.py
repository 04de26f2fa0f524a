"""``prices sync``: bring the installed ``genai-prices`` catalog into the price table.

A value is applied only when it differs from the last value applied from the package
(source ``package``), as ``initialize_default_pricing`` does for the catalog and the
environment, so a form or import edit stands until the package's own price changes.

Per key (provider, model, service tier):

- never synced: the package's whole history is written, the first version in force from
  the beginning of time, each dated change from its date;
- synced before: dated changes later than anything applied are written at their dates;
  then, if the package's price in force now differs from the package version in force
  now, it is written from now (a price the package changed without a date, or a dated
  change older than the last one applied).

Everything is written in one transaction with one executemany.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from core.pricing.catalog.package import RATE_FIELDS, SOURCE, Conversion, PackageVersion, convert
from core.storage.engine import run_write
from core.storage.tables import PriceVersion

_LOCK_KEY = 4242001  # the same advisory lock as core.prices: one price writer at a time


@dataclass
class SyncResult:
    """What a sync wrote (or, dry, would write)."""

    conversion: Conversion
    dry_run: bool
    written: list[dict[str, object]] = field(default_factory=list)  # rows inserted
    new_models: int = 0  # (provider, model) keys seen for the first time
    changed: list[str] = field(default_factory=list)  # one line per changed key of a synced model

    @property
    def versions_written(self) -> int:
        return len(self.written)

    def as_json(self) -> dict[str, Any]:
        out = self.conversion.summary()
        out.pop("versions")
        out.update(
            dry_run=self.dry_run,
            versions_in_package=len(self.conversion.versions),
            versions_written=self.versions_written,
            new_models=self.new_models,
            changes=self.changed,
        )
        return out

    def lines(self) -> list[str]:
        """Human lines for ``init`` and ``prices sync``; none when nothing changed."""
        if not self.written:
            return []
        verb = "would write" if self.dry_run else "wrote"
        c = self.conversion
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(c.skipped.items()))
        lines = [
            f"genai-prices {c.package_version}: {verb} {self.versions_written} price versions "
            f"({self.new_models} new models, {len(self.changed)} changed prices); "
            f"{c.models_priced} models priced (+{c.fallback_models} through a provider's fallback); "
            f"skipped {sum(c.skipped.values())} models: {skipped}"
        ]
        lines.extend(self.changed)
        return lines


def _existing(conn: Connection) -> dict[tuple[str, str, str], list[tuple[datetime, tuple[object, ...]]]]:
    """The package versions already applied, per key, ordered by (effective_from, id)."""
    columns = [getattr(PriceVersion, name) for name in RATE_FIELDS]
    query = (
        select(
            PriceVersion.provider,
            PriceVersion.model_name,
            PriceVersion.service_tier,
            PriceVersion.effective_from,
            *columns,
            PriceVersion.tiers,
            PriceVersion.match_rule,
        )
        .where(PriceVersion.source == SOURCE)
        .order_by(PriceVersion.effective_from, PriceVersion.id)
    )
    existing: dict[tuple[str, str, str], list[tuple[datetime, tuple[object, ...]]]] = {}
    for row in conn.execute(query):
        key = (row[0], row[1].lower(), row[2])
        existing.setdefault(key, []).append((row[3], tuple(row[4:])))
    return existing


def _in_force(timeline: Sequence[tuple[datetime, object]], moment: datetime) -> object | None:
    position = bisect_right([t for t, _ in timeline], moment) - 1
    return timeline[position][1] if position >= 0 else None


def plan(
    conversion: Conversion,
    existing: dict[tuple[str, str, str], list[tuple[datetime, tuple[object, ...]]]],
    now: datetime,
) -> SyncResult:
    """Which rows the sync writes, without touching the database."""
    result = SyncResult(conversion, dry_run=False)
    by_key: dict[tuple[str, str, str], list[PackageVersion]] = {}
    for version in conversion.versions:
        by_key.setdefault(version.key, []).append(version)
    new_models: set[tuple[str, str]] = set()
    for key, versions in by_key.items():
        applied = existing.get(key)
        if not applied:
            result.written.extend(v.row(now) for v in versions)
            new_models.add(key[:2])
            continue
        timeline = list(applied)
        last_applied = timeline[-1][0]
        for version in versions:
            if version.effective_from > last_applied:  # a dated change newer than anything applied
                result.written.append(version.row(now))
                timeline.append((version.effective_from, version.values))
                result.changed.append(_describe(version, _in_force(applied, version.effective_from), "from"))
        package_now = _in_force([(v.effective_from, v) for v in versions], now)
        assert isinstance(package_now, PackageVersion)
        applied_now = _in_force(timeline, now)
        if applied_now != package_now.values:
            result.written.append(package_now.row(now, effective_from=now))
            result.changed.append(_describe(package_now, applied_now, "now"))
    result.new_models = len(new_models)
    return result


def _describe(version: PackageVersion, before: object | None, when: str) -> str:
    from decimal import Decimal

    from core.money import format_per_million

    def pair(rates: Sequence[object]) -> str:
        values = [r if isinstance(r, Decimal) else Decimal(0) for r in rates[:2]]
        return f"input {format_per_million(values[0])}, output {format_per_million(values[1])}"

    where = f"{version.provider}/{version.model_name}"
    if version.service_tier != "standard":
        where += f" ({version.service_tier})"
    since = "from now" if when == "now" else f"from {version.effective_from:%Y-%m-%d}"
    if isinstance(before, tuple) and before[:2] != version.rates[:2]:
        return f"{where}: package price {pair(before)} -> {pair(version.rates)}, {since}"
    return f"{where}: package price now {pair(version.rates)}, {since}"


def sync_package(
    engine: Engine,
    *,
    dry_run: bool = False,
    conversion: Conversion | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Apply the installed package's catalog (or ``conversion``); ``dry_run`` writes nothing."""
    conversion = convert() if conversion is None else conversion
    moment = now or datetime.now(UTC)
    if dry_run:
        with engine.connect() as conn:
            result = plan(conversion, _existing(conn), moment)
        result.dry_run = True
        return result

    def work(conn: Connection) -> SyncResult:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
        result = plan(conversion, _existing(conn), moment)
        if result.written:
            conn.execute(insert(PriceVersion), result.written)  # one executemany, no RETURNING
        return result

    result = run_write(engine, work)
    if result.written:
        from core.pricing.lookup import price_book

        price_book(engine).invalidate()
    return result


def result_json(result: SyncResult) -> str:
    return json.dumps(result.as_json())
