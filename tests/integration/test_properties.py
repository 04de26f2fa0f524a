"""Property and fuzz tests: the cost formula is exact and additive; the importer never crashes or half-writes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from core.pricing.edits import PriceEdit, save_price
from core.pricing.formula import breakdown
from core.pricing.lookup import calculate_cost
from core.pricing.rates import MAX_CALL_COST_PICO, Price, PriceMatch, PricingError
from core.recording.calls import make_call, record_batch
from core.recording.importer import ImportFileError, import_file
from core.recording.rollups import check_rollups
from core.storage.tables import UsageRecord

NOW = datetime(2025, 7, 1, tzinfo=UTC)
JUNE = datetime(2025, 6, 1, tzinfo=UTC)
DB = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
serial = itertools.count()

tokens = st.integers(min_value=0, max_value=10**12)
# A per-token price: a whole number of pico-dollars up to the sane maximum of $0.01.
rates = st.integers(min_value=0, max_value=10**10).map(lambda pico: Decimal(pico).scaleb(-12))


@settings(max_examples=300)
@given(
    tokens_in=tokens,
    tokens_out=tokens,
    cached_share=st.floats(min_value=0, max_value=1),
    rate_in=rates,
    rate_out=rates,
    rate_cached=st.none() | rates,
    per_request=st.none() | st.integers(min_value=0, max_value=10**15).map(lambda p: Decimal(p).scaleb(-12)),
)
def test_cost_is_exactly_tokens_times_price_and_never_negative(
    tokens_in: int,
    tokens_out: int,
    cached_share: float,
    rate_in: Decimal,
    rate_out: Decimal,
    rate_cached: Decimal | None,
    per_request: Decimal | None,
) -> None:
    cached = int(tokens_in * cached_share)
    price = Price(1, "acme", "m", rate_in, rate_out, rate_cached, per_request, None, "test")
    cached_rate = rate_in if rate_cached is None else rate_cached
    expected_in = (tokens_in - cached) * rate_in + cached * cached_rate
    expected_out = tokens_out * rate_out
    expected = expected_in + expected_out + (per_request or 0)
    match = PriceMatch("exact", price, "test")
    if expected.scaleb(12) > MAX_CALL_COST_PICO:
        with pytest.raises(PricingError, match="cost_total"):
            breakdown(match, "acme", "m", tokens_in, tokens_out, cached)
        return
    b = breakdown(match, "acme", "m", tokens_in, tokens_out, cached)
    assert (b.cost_input, b.cost_output, b.cost_total) == (expected_in, expected_out, expected)
    assert min(b.cost_input, b.cost_output, b.cost_total) >= 0


MAX_CALL_COST = Decimal(MAX_CALL_COST_PICO).scaleb(-12)
per_million_text = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False).map(
    lambda d: format(d, "f")
)


@DB
@given(
    input_per_1m=per_million_text,
    output_per_1m=per_million_text,
    tokens_in=st.integers(0, 10**9),
    tokens_out=st.integers(0, 10**9),
)
def test_a_saved_price_costs_exactly_tokens_times_the_form_value(
    engine: Engine, input_per_1m: str, output_per_1m: str, tokens_in: int, tokens_out: int
) -> None:
    model = f"prop-{next(serial)}"
    save_price(engine, PriceEdit("acme", model, input_per_1m, output_per_1m, effective_from=NOW.replace(year=2024)))
    expected = tokens_in * Decimal(input_per_1m) / 1_000_000 + tokens_out * Decimal(output_per_1m) / 1_000_000
    if expected > MAX_CALL_COST:  # above what one call may cost: refused, never rounded
        with pytest.raises(PricingError, match="cost_total"):
            calculate_cost(engine, "acme", model, tokens_in, tokens_out, at=NOW)
        return
    b = calculate_cost(engine, "acme", model, tokens_in, tokens_out, at=NOW)
    assert b.matched_by == "exact"
    assert b.cost_total == expected
    assert b.cost_total >= 0


call_values = st.tuples(
    st.sampled_from([("huggingface", "openai/gpt-oss-120b:groq"), ("openai", "gpt-4o"), ("acme", "unpriced")]),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**6),
    st.integers(0, 30 * 86_400 - 1),
)


@DB
@given(calls=st.lists(call_values, min_size=1, max_size=40), cut=st.integers(0, 40))
def test_recording_in_two_batches_costs_the_same_as_in_one(engine: Engine, calls: list[tuple], cut: int) -> None:
    run = next(serial)

    def make(prefix: str) -> list:
        return [
            make_call(
                provider,
                model,
                tokens_in,
                tokens_out,
                min(cached, tokens_in),
                request_id=f"{prefix}-{run}-{i}",
                timestamp=JUNE + timedelta(seconds=seconds),
                now=NOW,
            )
            for i, ((provider, model), tokens_in, tokens_out, cached, seconds) in enumerate(calls)
        ]

    whole = record_batch(engine, make("one"))
    split = make("two")
    first, second = record_batch(engine, split[:cut]), record_batch(engine, split[cut:])
    assert whole.recorded == first.recorded + second.recorded == len(calls)

    def total(ids: tuple[int, ...]) -> Decimal:
        with engine.connect() as conn:
            costs = conn.execute(select(UsageRecord.cost_total).where(UsageRecord.id.in_(ids))).scalars()
            return sum(costs, Decimal(0))

    assert total(whole.ids) == total(first.ids) + total(second.ids)
    assert check_rollups(engine).matches


# --- importer fuzz ----------------------------------------------------------------------------------

names = st.text(min_size=0, max_size=12) | st.sampled_from(["openai", "gpt-4o", "", " ", "a'b", "\u00e9"])
junk_value = (
    st.none()
    | st.booleans()
    | st.integers(-(10**14), 10**14)
    | st.floats(allow_nan=False, allow_infinity=False)
    | names
    | st.sampled_from(["2025-06-01T10:00:00Z", "2025-02-30", "12", "-3", "1e3"])
    | st.lists(st.integers(), max_size=2)
)
junk_row = st.dictionaries(
    st.sampled_from(["timestamp", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens", "user"])
    | st.text(max_size=5),
    junk_value,
    max_size=8,
).map(lambda d: json.dumps(d).encode())
junk_line = junk_row | st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))
valid_row = st.fixed_dictionaries(
    {
        "timestamp": st.sampled_from(["2025-06-01T10:00:00Z", "2025-05-31T23:59:59+02:00", "2024-12-31T00:00:00"]),
        "provider": st.sampled_from(["huggingface", "openai", "acme"]),
        "model": st.sampled_from(["openai/gpt-oss-120b:groq", "gpt-4o", "x'; DROP TABLE t; --"]),
        "input_tokens": st.integers(0, 10**9),
        "output_tokens": st.integers(0, 10**9),
        "user": st.sampled_from(["ann", "bob", None]),
    }
)


def stored_since(engine: Engine, after: int) -> list[UsageRecord]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.id > after)))


def same_call(record: UsageRecord, row: dict) -> bool:
    return (
        record.provider == row["provider"].strip().lower()
        and record.model == row["model"].strip()
        and record.input_tokens == row["input_tokens"]
        and record.output_tokens == row["output_tokens"]
        and record.user_id == ((row.get("user") or "").strip() or None)
    )


@DB
@given(lines=st.lists(st.tuples(st.booleans(), valid_row, junk_line), min_size=0, max_size=30))
def test_the_importer_never_raises_and_never_writes_a_partial_row(
    engine: Engine, tmp_path: Path, lines: list[tuple[bool, dict, bytes]]
) -> None:
    run = next(serial)
    path = tmp_path / f"fuzz-{run}.jsonl"
    content, valid = [], {}
    for i, (is_valid, row, junk) in enumerate(lines):
        if is_valid:
            row = {**row, "request_id": f"fuzz-{run}-{i}"}
            valid[row["request_id"]] = row
            content.append(json.dumps(row).encode())
        else:
            content.append(junk)
    path.write_bytes(b"\n".join(content) + b"\n")
    with engine.connect() as conn:
        before = conn.execute(select(func.coalesce(func.max(UsageRecord.id), 0))).scalar_one()

    result = import_file(engine, path, batch_size=7, now=NOW)

    new = stored_since(engine, before)
    assert result.taken == len(new)
    assert all(isinstance(line, int) and reason for line, reason in result.refused)
    for record in new:
        if record.request_id in valid:
            assert same_call(record, valid.pop(record.request_id))
        else:  # a junk line that happened to be a valid call: stored exactly as that line says
            line = int(record.request_id.rsplit("-L", 1)[1])
            assert same_call(record, json.loads(content[line - 1]))
        assert record.cost_total == record.cost_input + record.cost_output >= 0
    assert valid == {}, f"valid rows not stored: {list(valid)}"
    assert check_rollups(engine).matches


@settings(max_examples=60, deadline=None)
@given(body=st.lists(st.binary(max_size=60), max_size=12), header=st.booleans())
def test_the_importer_never_raises_on_arbitrary_csv_bytes(tmp_path_factory, body: list[bytes], header: bool) -> None:
    from core.storage.engine import make_engine
    from core.storage.migrate import create_tables

    folder = tmp_path_factory.mktemp("csvfuzz")
    engine = make_engine(f"sqlite:///{folder / 'f.db'}")
    create_tables(engine)
    path = folder / "calls.csv"
    head = b"timestamp,provider,model,input_tokens,output_tokens\n" if header else b""
    path.write_bytes(head + b"\n".join(body))
    try:
        result = import_file(engine, path, now=NOW)
    except ImportFileError as exc:  # a whole-file refusal (no header, unknown columns) is a message, not a crash
        assert "CSV header" in str(exc) or "empty" in str(exc)
        result = None
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    assert count == (result.taken if result else 0)
    engine.dispose()
