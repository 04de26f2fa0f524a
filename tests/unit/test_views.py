"""The pages' pure pieces: filters, periods, the spend figure, tables and projections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.reporting import forecast
from core.reporting.aggregates import Row, Totals
from core.reporting.logs import LogFilter, LogFilterError
from ui.charts import OTHER, spend_chart, spend_series
from ui.views import breakdown_table, estimate_notice, period_dates


def test_bad_filters_name_the_field() -> None:
    with pytest.raises(LogFilterError, match="matched_by: 'cheap'"):
        LogFilter(matched_by="cheap")
    with pytest.raises(LogFilterError, match="start"):
        LogFilter(start=datetime(2025, 1, 1))


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


def test_spend_chart_stacks_and_keeps_exact_hover_text() -> None:
    rows = [_row(1, "openai", "0.0025"), _row(1, "groq", "1.5"), _row(2, "openai", "0.000003")]
    chart = spend_chart(rows, "Provider", "day")
    (bars_layer,) = chart["layer"]
    encoding = bars_layer["encoding"]
    assert bars_layer["mark"]["type"] == "bar" and encoding["y"]["stack"] == "zero"
    assert encoding["color"]["sort"] == ["groq", "openai"]  # biggest spender first
    assert encoding["x"]["type"] == "ordinal" and encoding["x"]["sort"] == ["Mar 1", "Mar 2"]  # periods, in order
    openai = [b for b in chart["datasets"]["bars"] if b["series"] == "openai"]
    assert [(b["period"], b["exact"]) for b in openai] == [("Mar 1", "$0.0025"), ("Mar 2", "$0.000003")]
    assert {"field": "exact", "title": "Spend"} in encoding["tooltip"]


def test_spend_series_sums_the_tail_and_keeps_names_as_text() -> None:
    rows = [_row(1, f"m{i}", str(10 - i)) for i in range(10)]
    series = spend_series(rows, max_series=3)
    assert list(series) == ["m0", "m1", "m2", OTHER]
    assert series[OTHER]["2025-03-01"] == sum(Decimal(10 - i) for i in range(3, 10))
    chart = spend_chart([_row(1, "<b>x</b>", "1")], "Model", "day")
    assert chart["datasets"]["bars"][0]["series"] == "<b>x</b>"  # a value Vega-Lite draws as text, never markup


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
