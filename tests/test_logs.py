"""Log browsing: keyset pages, filters, the CSV export; and the pure tables, figures and forecasts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core import forecast
from core.logs import LogFilter, LogFilterError, fetch_page, get_row, iter_rows, write_csv
from core.pricing import formula_lines
from core.reports import Row, Totals
from core.usage import make_call, record_batch
from ui.charts import OTHER, spend_figure, spend_series
from ui.views import breakdown_table, estimate_notice, period_dates

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


def test_bad_filters_name_the_field() -> None:
    with pytest.raises(LogFilterError, match="matched_by: 'cheap'"):
        LogFilter(matched_by="cheap")
    with pytest.raises(LogFilterError, match="start"):
        LogFilter(start=datetime(2025, 1, 1))


def test_csv_export_has_exact_money_and_defuses_formulas(logged) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    assert write_csv(logged, LogFilter(), out) == 10
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 10
    assert rows[0]["cost_total"] == "0.0025" and rows[0]["input_token_cost"] == "0.000001"
    assert rows[-1]["request_id"] == "'=cmd|calc"


def test_period_choices() -> None:
    today = date(2025, 3, 15)
    assert period_dates("Last 7 days", today) == (date(2025, 3, 9), today)
    assert period_dates("This month", today) == (date(2025, 3, 1), today)
    assert period_dates("All time", today) == (None, None)
    assert period_dates("Custom", today, (date(2025, 3, 10), date(2025, 3, 1))) == (date(2025, 3, 1), date(2025, 3, 10))
    with pytest.raises(ValueError, match="period"):
        period_dates("Forever", today)


def _row(day: int, key: str, cost: str, calls: int = 1) -> Row:
    return Row(date(2025, 3, day), key, Totals(calls=calls, cost_total=Decimal(cost)))


def test_spend_figure_stacks_and_keeps_exact_hover_text() -> None:
    rows = [_row(1, "openai", "0.0025"), _row(1, "groq", "1.5"), _row(2, "openai", "0.000003")]
    figure = spend_figure(rows, "Provider", "day")
    assert figure.layout.barmode == "stack"
    names = [t.name for t in figure.data]
    assert names == ["groq", "openai"]  # biggest spender first
    openai = figure.data[1]
    assert list(openai.x) == ["Mar 1", "Mar 2"]  # periods, on a category axis
    assert figure.layout.xaxis.type == "category"
    assert [c[1] for c in openai.customdata] == ["$0.0025", "$0.000003"]


def test_spend_series_sums_the_tail_and_escapes_markup_in_names() -> None:
    rows = [_row(1, f"m{i}", str(10 - i)) for i in range(10)]
    series = spend_series(rows, max_series=3)
    assert list(series) == ["m0", "m1", "m2", OTHER]
    assert series[OTHER]["2025-03-01"] == sum(Decimal(10 - i) for i in range(3, 10))
    figure = spend_figure([_row(1, "<b>x</b>", "1")], "Model", "day")
    assert figure.data[0].name == "&lt;b&gt;x&lt;/b&gt;"


def test_breakdown_table_and_estimate_notice() -> None:
    table = breakdown_table([_row(1, "a", "3"), _row(1, "b", "1")], "Model")
    assert list(table["Spend"]) == ["$3.00", "$1.00"] and list(table["Share"]) == ["75.0%", "25.0%"]
    assert list(table["Exact spend (USD)"]) == ["3", "1"]
    assert estimate_notice(Totals(calls=3)) is None
    notice = estimate_notice(Totals(calls=3, estimated_calls=2, estimated_cost=Decimal("0.000004")))
    assert notice and notice.startswith("2 calls had no price; shown at the $1/1M estimate ($0.000004")


def test_change_and_month_end_projection() -> None:
    assert forecast.change_ratio(Decimal(15), Decimal(10)) == Decimal("0.5")
    assert forecast.format_change(forecast.change_ratio(Decimal(15), Decimal(10))) == "+50.0%"
    assert forecast.format_change(forecast.change_ratio(Decimal(5), Decimal(10))) == "-50.0%"
    assert forecast.change_ratio(Decimal(5), Decimal(0)) is None
    assert forecast.format_change(Decimal("-0.0001")) == "0.0%"  # never "+-0.0%"
    start, end = forecast.month_bounds(datetime(2025, 4, 10, 12, tzinfo=UTC), ZoneInfo("UTC"))
    assert (start, end) == (datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
    # 3 days of 30 gone, $3 spent: $30 by the end at the same rate
    assert forecast.project_month_end(Decimal(3), start, start + timedelta(days=3), end) == Decimal(30)
    tokyo = forecast.month_bounds(datetime(2025, 3, 31, 16, tzinfo=UTC), ZoneInfo("Asia/Tokyo"))
    assert tokyo[0] == datetime(2025, 3, 31, 15, tzinfo=UTC)  # already April 1st in Tokyo


def test_formula_lines_match_the_seed(engine) -> None:  # type: ignore[no-untyped-def]
    from core.pricing import calculate_cost

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

    from core.logs import export_query, filter_from_query

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
    from core.logs import csv_chunks

    chunks = list(csv_chunks(logged, LogFilter(), rows_per_chunk=3))
    assert len(chunks) == 4  # 10 rows: 3 + 3 + 3 + the last 1 (with the header in the first)
    assert "".join(chunks).count("\r\n") == 11


def test_every_matched_by_filter_finds_exactly_its_calls_through_an_index(logged) -> None:  # type: ignore[no-untyped-def]
    """Matched by: the rare steps are served by the partial index ix_usage_unexact_time
    (the query repeats its predicate), "exact" by the time index; each finds exactly its calls."""
    from sqlalchemy import text

    from core.logs import _query
    from core.pricing import MATCH_STEPS

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
