"""The Overview queries and ``report --by day`` at each size (goal at 10M: <= 100 ms and <= 1.5x the time at 10k).

Sizes from BENCH_SIZES (default ``10k,1m``; add ``10m`` to build and measure 10M calls, which takes minutes).
Each figure is the median of 5 runs, for the last 30 days, in UTC and in Asia/Kolkata (+5:30).
"""

from __future__ import annotations

import contextlib
import io
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from common import backends, demo_database, figure, sizes, timed

import core.cli.main as cli
from core.reporting import aggregates as reports


def overview(engine, tz: ZoneInfo) -> None:  # type: ignore[no-untyped-def]
    """What the Overview page asks for: KPIs, spend per day by provider, by model, by user."""
    today = datetime.now(tz).date()
    start = datetime.combine(today - timedelta(days=29), datetime.min.time(), tz)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tz)
    reports.totals(engine, start, end)
    reports.over_time(engine, start, end, tz, "day", by="provider")
    reports.breakdown(engine, start, end, "model")
    reports.breakdown(engine, start, end, "user")


def report_by_day(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    since = (datetime.now(UTC).date() - timedelta(days=29)).isoformat()
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["report", "--by", "day", "--since", since]) == 0


def main() -> None:
    for backend in backends():
        first: dict[str, float] = {}
        for label, rows in sizes():
            engine, url, built = demo_database(backend, label, rows)
            if built is not None:
                figure(f"build demo db {label}, {backend} (record_batch)", rows / built, "calls/s")
            for zone_name in ("UTC", "Asia/Kolkata"):
                tz = ZoneInfo(zone_name)
                overview(engine, tz)  # warm caches and the price book once
                ms = timed(lambda tz=tz, engine=engine: overview(engine, tz)) * 1000
                key = f"overview {zone_name}"
                first.setdefault(key, ms)
                figure(f"Overview queries, 30 days, {zone_name}, {label}, {backend}", ms, "ms", "10k", ms / first[key])
            report_by_day(url)
            ms = timed(lambda url=url: report_by_day(url)) * 1000
            first.setdefault("report", ms)
            figure(f"report --by day (in-process), {label}, {backend}", ms, "ms", "10k", ms / first["report"])
            engine.dispose()
    if "10m" not in os.environ.get("BENCH_SIZES", ""):
        print("(10M calls: BENCH_SIZES=10k,1m,10m make bench   -- builds a 10M-call database once, several minutes)")


if __name__ == "__main__":
    main()
