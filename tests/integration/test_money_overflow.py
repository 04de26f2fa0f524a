"""Issue 19, point 9: a stored sum never passes 2^63-1 pico-dollars on SQLite; latency_ms has its maximum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text

from core.recording.calls import MAX_LATENCY_MS, CallError, make_call, record_batch
from core.recording.rollups import check_rollups
from core.storage.tables import UsageRecord, UsageRollup

LIMIT = 2**63 - 1


def estimate(tokens: int, at: datetime) -> object:
    """An unpriced model: the $1 per 1M tokens estimate, so a token costs 10^6 pico-dollars."""
    return make_call("acme", "model-x", tokens, 0, timestamp=at)


def test_the_call_that_would_pass_the_limit_is_refused_exactly_there(engine: Engine) -> None:
    at = datetime.now(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    if at > datetime.now(UTC):
        at -= timedelta(days=1)
    record_batch(engine, [estimate(10**12, at) for _ in range(9)])  # 9 * 10^18 pico
    rest = (LIMIT - 9 * 10**18) // 10**6  # whole tokens that still fit
    record_batch(engine, [estimate(rest, at)])  # the sum is now within 10^6 pico of 2^63-1
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        with pytest.raises(CallError, match="^overflow: .*PostgreSQL"):
            record_batch(engine, [estimate(1, at)])
        with pytest.raises(CallError, match="^overflow"):  # in one batch: SQLite's own sum() overflows
            record_batch(engine, [estimate(10**12, at + timedelta(days=1)) for _ in range(10)])
    else:
        assert record_batch(engine, [estimate(1, at)]).recorded == 1  # NUMERIC(38, 12): exact far past it
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
        day_total = conn.execute(
            select(UsageRollup.cost_total).where(UsageRollup.grain == 86400, UsageRollup.model == "")
        ).scalar_one()
        if sqlite:
            kinds = conn.execute(text("SELECT DISTINCT typeof(cost_total) FROM usage_rollups")).scalars().all()
            assert kinds == ["integer"]
    assert stored == (10 if sqlite else 11)
    assert day_total == Decimal(9 * 10**18 + rest * 10**6 + (0 if sqlite else 10**6)) / 10**12
    assert check_rollups(engine).matches


def test_latency_above_the_documented_maximum_is_refused() -> None:
    assert make_call("acme", "m", 1, 1, latency_ms=MAX_LATENCY_MS).latency_ms == MAX_LATENCY_MS
    for value in (MAX_LATENCY_MS + 1, float(MAX_LATENCY_MS + 1), 1e308, 10**30):
        with pytest.raises(CallError, match="^latency_ms: .*limit"):
            make_call("acme", "m", 1, 1, latency_ms=value)


def test_rebuild_rollups_names_an_overflow_as_overflow(
    empty_engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log an older release let past the limit: `rebuild-rollups` says overflow, not DATABASE_URL."""
    if empty_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sums NUMERIC(38, 12): no overflow to name")
    from core.cli.main import main

    at = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(10):  # one batch each, 10^18 pico-dollars each: the stored sum passes 2^63-1 at the tenth
        with empty_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_usage_logs (timestamp, provider, model, input_tokens, output_tokens, "
                    "cached_input_tokens, cost_input, cost_output, cost_total, matched_by, recorded_at, "
                    "cache_write_tokens, cache_write_1h_tokens, reasoning_tokens, web_search_calls, service_tier, "
                    "price_service_tier, status, cost_web_search, cost_request) VALUES (:t, 'acme', 'm', 1, 0, 0, "
                    ":c, 0, :c, 'estimate', :t, 0, 0, 0, 0, 'standard', 'standard', 'ok', 0, 0)"
                ),
                {"t": at.replace(tzinfo=None).isoformat(sep=" "), "c": 10**18},
            )
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["rebuild-rollups"]) == 1
    err = capsys.readouterr().err
    assert "overflow" in err and "DATABASE_URL: cannot use" not in err
