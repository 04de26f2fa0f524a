"""Log browsing: keyset pages, filters, the CSV export; and the pure tables, figures and forecasts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.pricing.formula import formula_lines
from core.recording.calls import make_call, record_batch
from core.reporting.logs import LogFilter, LogFilterError, fetch_page, get_row, iter_rows, write_csv

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def logged(engine):  # type: ignore[no-untyped-def]
    calls = [
        make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, user="alice", timestamp=T0),
        make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, user="bob", timestamp=T0),  # same instant
    ]
    calls += [
        make_call("openai", "gpt-4o", 100, 10, user="bob", timestamp=T0 - timedelta(minutes=i)) for i in range(1, 8)
    ]
    calls.append(make_call("nobody", "mystery", 1, 1, request_id="=cmd|calc", timestamp=T0 - timedelta(hours=1)))
    record_batch(engine, calls)
    return engine


def test_keyset_pages_cover_every_row_once_newest_first(logged) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    cursor = None
    while True:
        page = fetch_page(logged, LogFilter(), limit=3, after=cursor)
        seen += [r.id for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 10
    every = list(iter_rows(logged, LogFilter(), batch=4))
    assert [r.id for r in every] == seen
    keys = [(r.timestamp, r.id) for r in every]
    assert keys == sorted(keys, reverse=True)  # ties on timestamp broken by id


def test_filters_and_the_price_used(logged) -> None:  # type: ignore[no-untyped-def]
    rows = fetch_page(logged, LogFilter(provider="huggingface", user="bob")).rows
    assert len(rows) == 1 and rows[0].user == "bob"
    assert rows[0].input_token_cost == Decimal("0.000001") and rows[0].cost_total == Decimal("0.0025")
    assert rows[0].matched_by == "exact"
    estimated = fetch_page(logged, LogFilter(matched_by="estimate")).rows
    assert [r.model for r in estimated] == ["mystery"] and estimated[0].input_token_cost is None
    period = fetch_page(logged, LogFilter(start=T0 - timedelta(minutes=3), end=T0)).rows
    assert len(period) == 3
    assert get_row(logged, rows[0].id) == rows[0]
    assert get_row(logged, 10**9) is None


def test_csv_export_has_exact_money_and_defuses_formulas(logged) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    assert write_csv(logged, LogFilter(), out) == 10
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 10
    assert rows[0]["cost_total"] == "0.0025" and rows[0]["input_token_cost"] == "0.000001"
    assert rows[-1]["request_id"] == "'=cmd|calc"


def test_formula_lines_match_the_seed(engine) -> None:  # type: ignore[no-untyped-def]
    from core.pricing.lookup import calculate_cost

    lines = formula_lines(calculate_cost(engine, "huggingface", "openai/gpt-oss-120b:groq", 1000, 500))
    assert lines == [
        "cost_input = 1000 * 0.000001 = $0.001",
        "cost_output = 500 * 0.000003 = $0.0015",
        "cost_total = $0.0025",
    ]


def test_export_query_round_trips_and_bad_values_are_named() -> None:
    from datetime import UTC, datetime
    from urllib.parse import parse_qsl

    import pytest

    from core.reporting.logs import export_query, filter_from_query

    flt = LogFilter(start=datetime(2025, 6, 1, tzinfo=UTC), provider="open ai&co", matched_by="exact")

    assert filter_from_query(dict(parse_qsl(export_query(flt)))) == flt
    for params, field in (
        ({"start": "yesterday"}, "start"),
        ({"matched_by": "guess"}, "matched_by"),
        ({"sort": "id"}, "sort"),
    ):
        with pytest.raises(LogFilterError, match=field):
            filter_from_query(params)


def test_csv_is_produced_in_chunks_not_all_at_once(logged) -> None:  # type: ignore[no-untyped-def]
    from core.reporting.logs import csv_chunks

    chunks = list(csv_chunks(logged, LogFilter(), rows_per_chunk=3))
    assert len(chunks) == 4  # 10 rows: 3 + 3 + 3 + the last 1 (with the header in the first)
    assert "".join(chunks).count("\r\n") == 11


def test_every_matched_by_filter_finds_exactly_its_calls_through_an_index(logged) -> None:  # type: ignore[no-untyped-def]
    """Matched by: the rare steps are served by the partial index ix_usage_unexact_time
    (the query repeats its predicate), "exact" by the time index; each finds exactly its calls."""
    from sqlalchemy import text

    from core.pricing.rates import MATCH_STEPS
    from core.reporting.logs import _query

    everything = list(iter_rows(logged, LogFilter()))
    for step in MATCH_STEPS:
        found = [r.id for r in fetch_page(logged, LogFilter(matched_by=step), limit=100).rows]
        assert found == [r.id for r in everything if r.matched_by == step], step
    query = _query(LogFilter(matched_by="estimate")).limit(51)
    with logged.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        else:  # a table this small would be read whole: ask which index PostgreSQL can use
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
    assert "ix_usage_unexact_time" in plan, plan
