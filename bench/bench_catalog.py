"""The genai-prices catalog: ``init`` on an empty database (goal < 5 s on SQLite), and price
lookups per second with the full catalog against the release-1 table of 50 rows (goal >= 0.8x).

``init`` is timed as users run it (``python -m core init``, a fresh process: imports, tables,
the package's data converted, one executemany), then in-process split into its parts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import OUT, ROOT, backends, figure, fresh_sqlite, pg_schema_url
from sqlalchemy import func, select

from core.pricing.catalog import load_catalog
from core.pricing.catalog.package import convert
from core.pricing.catalog.sync import sync_package
from core.pricing.lookup import current_index
from core.pricing.seeding import initialize_default_pricing
from core.recording.demo import generate
from core.storage.engine import make_engine
from core.storage.migrate import create_tables
from core.storage.tables import PriceVersion

LOOKUPS = 50_000


def _url(backend: str, name: str) -> str:
    return fresh_sqlite(f"{name}.db") if backend == "sqlite" else pg_schema_url(f"bench_{name}", fresh=True)


def _versions(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(select(func.count()).select_from(PriceVersion)).scalar_one())
    engine.dispose()
    return count


def init_process(backend: str) -> None:
    url = _url(backend, "catalog_init")
    env = dict(os.environ, DATABASE_URL=url)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", "init"], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"python -m core init failed on {backend}")
    versions = _versions(url)
    figure(f"init, empty database, full catalog ({backend})", elapsed, "s", versions=versions, backend=backend)
    figure(f"  price versions written ({backend})", versions, "rows", backend=backend)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "init"], cwd=ROOT, env=env, capture_output=True, check=True)
    figure(f"init again, nothing to change ({backend})", time.perf_counter() - started, "s", backend=backend)


def init_parts(backend: str) -> None:
    engine = make_engine(_url(backend, "catalog_parts"))
    create_tables(engine)
    from core.pricing.catalog import package

    package._cache.clear()  # convert, not the per-process cache
    started = time.perf_counter()
    conversion = convert()
    figure(f"  convert the package's data (in-process) ({backend})", time.perf_counter() - started, "s")
    started = time.perf_counter()
    result = sync_package(engine, conversion=conversion)
    figure(
        f"  sync: read, plan, one executemany ({backend})",
        time.perf_counter() - started,
        "s",
        versions=result.versions_written,
    )
    engine.dispose()


def lookups(backend: str) -> None:
    calls = [(c.provider, c.model, c.timestamp) for c in generate(90, LOOKUPS, seed=7)]
    rates = {}
    release1 = OUT / "catalog_release1.csv"
    shown = subprocess.run(
        ["git", "show", "a133355:core/catalog.csv"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    release1.write_text(shown.stdout)
    for label in ("release-1 table (50 rows)", "full catalog"):
        engine = make_engine(_url(backend, "catalog_lookup"))
        create_tables(engine)
        if label == "full catalog":
            initialize_default_pricing(engine)
        else:  # the release-1 rows only, without the package
            from core.pricing.catalog import sync as sync_module

            saved = sync_module.sync_package
            sync_module.sync_package = lambda engine, **_: _Nothing()  # type: ignore[assignment]
            try:
                initialize_default_pricing(engine, load_catalog(release1))
            finally:
                sync_module.sync_package = saved
        index = current_index(engine)
        rows = _versions(str(engine.url.render_as_string(hide_password=False)))
        started = time.perf_counter()
        for provider, model, at in calls:
            index.lookup(provider, model, at)
        rates[label] = LOOKUPS / (time.perf_counter() - started)
        figure(f"lookups/s, {label}, {rows:,} versions ({backend})", rates[label], "/s")
        engine.dispose()
    ratio = rates["full catalog"] / rates["release-1 table (50 rows)"]
    figure(f"lookups/s full catalog vs 50 rows ({backend})", ratio, "x", baseline="goal >= 0.8x")


class _Nothing:
    def lines(self) -> list[str]:
        return []


def main() -> None:
    for backend in backends():
        init_process(backend)
        init_parts(backend)
    lookups("sqlite")


if __name__ == "__main__":
    main()
