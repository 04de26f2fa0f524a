"""Recording calls: exact stored costs, idempotent request ids, history kept, verify; on every backend."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.pricing.edits import PriceEdit, save_price
from core.recording.audit import verify_call
from core.recording.calls import get_call, make_call, record_batch, record_usage
from core.reporting import aggregates as reports
from core.storage.columns import UTCDateTime
from core.storage.tables import UsageRecord

SEED = ("huggingface", "openai/gpt-oss-120b:groq")
PAST = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_recorded_call_keeps_its_exact_cost_and_price_version(engine: Engine) -> None:
    stored = record_usage(engine, make_call(*SEED, 1000, 500, request_id="r-1", timestamp=PAST.isoformat()))
    row = get_call(engine, stored.id)
    assert row is not None
    assert (row.cost_input, row.cost_output, row.cost_total) == (Decimal("0.001"), Decimal("0.0015"), Decimal("0.0025"))
    assert row.matched_by == "exact" and row.pricing_id is not None
    assert row.timestamp == PAST and row.timestamp.tzinfo is not None


def test_a_request_id_is_recorded_once(engine: Engine) -> None:
    first = record_usage(engine, make_call(*SEED, 1000, 500, request_id="same"))
    again = record_usage(engine, make_call(*SEED, 9999, 9999, request_id="same"))
    assert (again.id, again.duplicate) == (first.id, True)
    batch = record_batch(engine, [make_call(*SEED, 1, 1, request_id=rid) for rid in ("same", "new", "new")])
    assert (batch.recorded, batch.duplicates) == (1, 2)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 2


def test_estimated_calls_are_stored_as_such(engine: Engine) -> None:
    stored = record_usage(engine, make_call("nobody-ai", "mystery", 1000, 1000))
    row = get_call(engine, stored.id)
    assert row is not None and row.matched_by == "estimate" and row.pricing_id is None


def test_price_change_leaves_recorded_costs_alone_and_verify_shows_both(engine: Engine) -> None:
    old = record_usage(engine, make_call(*SEED, 1000, 500, timestamp=PAST.isoformat()))
    save_price(engine, PriceEdit(*SEED, "2", "6", changed_by="alice"))
    new = record_usage(engine, make_call(*SEED, 1000, 500))
    old_row, new_row = get_call(engine, old.id), get_call(engine, new.id)
    assert old_row is not None and new_row is not None
    assert (old_row.cost_total, new_row.cost_total) == (Decimal("0.0025"), Decimal("0.005"))
    assert old_row.pricing_id != new_row.pricing_id
    v = verify_call(engine, old.id)
    assert v is not None and v.matches
    assert (v.stored_cost_total, v.at_its_time.cost_total, v.today.cost_total) == (
        Decimal("0.0025"),
        Decimal("0.0025"),
        Decimal("0.005"),
    )


def test_verify_flags_a_stored_cost_that_does_not_match(engine: Engine) -> None:
    stored = record_usage(engine, make_call(*SEED, 1000, 500, timestamp=PAST.isoformat()))
    # a correction back-dated over the call's time: the stored cost no longer matches its time's prices
    save_price(engine, PriceEdit(*SEED, "3", "3", effective_from=PAST - timedelta(days=1)))
    v = verify_call(engine, stored.id)
    assert v is not None and not v.matches
    assert v.at_its_time.cost_total == Decimal("0.0045")


def test_time_zone_survives_the_round_trip(engine: Engine) -> None:
    stored = record_usage(engine, make_call(*SEED, 1, 1, timestamp="2025-06-30T23:30:00+05:45"))
    row = get_call(engine, stored.id)
    assert row is not None
    assert row.timestamp == datetime(2025, 6, 30, 17, 45, tzinfo=UTC)


def test_a_call_costing_more_than_storage_holds_is_refused(engine: Engine) -> None:
    import pytest

    from core.pricing.rates import PricingError

    save_price(engine, PriceEdit("acme", "big", "10000", "10000", effective_from=PAST - timedelta(days=1)))
    with pytest.raises(PricingError, match="above the limit of one call"):
        record_usage(engine, make_call("acme", "big", 10**12, 0, timestamp=PAST.isoformat()))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 0


def test_amounts_beyond_float_precision_are_stored_exactly(engine: Engine) -> None:
    # 43,636,147 tokens at $206.416009 / 1M = 9007.199311877323: more digits than a float holds
    save_price(engine, PriceEdit("acme", "m", "206.416009", "206.416009", effective_from=PAST - timedelta(days=1)))
    batch = record_batch(engine, [make_call("acme", "m", 0, 43_636_147, timestamp=PAST.isoformat())])
    row = get_call(engine, batch.ids[0])
    assert row is not None and row.cost_output == Decimal("9007.199311877323")
    span = (PAST - timedelta(days=1), PAST + timedelta(days=1))
    assert reports.totals(engine, *span).cost_total == Decimal("9007.199311877323")


def test_stored_instants_compare_exactly_with_bound_ones(engine: Engine) -> None:
    # the batch path must store instants exactly as SQLAlchemy binds them, or ==, >= and < go wrong on SQLite
    on_the_second = PAST.replace(minute=5)
    with_micros = PAST.replace(minute=6, microsecond=123)
    record_batch(engine, [make_call(*SEED, 1, 1, timestamp=t.isoformat()) for t in (on_the_second, with_micros)])
    with Session(engine) as session:
        assert session.scalars(select(UsageRecord.id).where(UsageRecord.timestamp == on_the_second)).all() == [1]
        assert session.scalars(select(UsageRecord.id).where(UsageRecord.timestamp >= on_the_second)).all() == [1, 2]
        assert session.scalars(select(UsageRecord.id).where(UsageRecord.timestamp < with_micros)).all() == [1]


def test_naive_datetimes_are_refused_by_the_column() -> None:
    import pytest

    with pytest.raises(ValueError, match="no time zone"):
        UTCDateTime().process_bind_param(datetime(2025, 1, 1), None)  # type: ignore[arg-type]


calls = st.lists(
    st.tuples(
        st.integers(0, 10**8),
        st.integers(0, 10**8),
        st.sampled_from([SEED, ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-20250514"), ("nobody", "x")]),
    ),
    min_size=1,
    max_size=20,
)
# per call at most 10^8 tokens * $0.01 = $1,000,000 in and out: 40 calls stay inside SQLite's 64-bit sums


@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=calls, price_text=st.decimals(min_value=0, max_value=Decimal("9999.99"), places=6).map(str))
def test_stored_costs_equal_tokens_times_price_and_sums_equal_rows(
    engine: Engine, batch: list, price_text: str
) -> None:
    save_price(engine, PriceEdit("prop", "m", price_text, price_text, effective_from=datetime(2000, 1, 2, tzinfo=UTC)))
    rate = Decimal(price_text) / 1_000_000
    made = [make_call(p, m, i, o, timestamp=PAST.isoformat()) for i, o, (p, m) in batch]
    made += [make_call("prop", "m", i, o, timestamp=PAST.isoformat()) for i, o, _ in batch]
    result = record_batch(engine, made)
    with Session(engine) as session:
        rows = session.scalars(select(UsageRecord).where(UsageRecord.id.in_(result.ids))).all()
        stored_sum = session.execute(select(func.sum(UsageRecord.cost_total))).scalar_one()
        all_rows = session.scalars(select(UsageRecord.cost_total)).all()
    for row in rows:
        assert row.cost_total == row.cost_input + row.cost_output
        assert row.cost_total >= 0
        if row.provider == "prop":
            assert row.cost_input == row.input_tokens * rate
            assert row.cost_output == row.output_tokens * rate
    assert stored_sum == sum(all_rows, Decimal(0))
    span = (datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))
    assert reports.totals(engine, *span).cost_total == stored_sum
