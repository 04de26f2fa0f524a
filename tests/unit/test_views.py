"""The pages' pure pieces: filters, periods, the spend figure, tables and projections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from core.reporting import forecast
from core.reporting.aggregates import Row, Totals
from core.reporting.logs import LogFilter, LogFilterError
from ui.charts import OTHER, chart_html, spend_chart, spend_series, y_ticks
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
    assert chart.series == ("groq", "openai")  # biggest spender first
    assert chart.periods == ("Mar 1", "Mar 2")  # periods in words, in order
    openai = [b for b in chart.bars if b.series == "openai"]
    assert [(b.period, b.exact) for b in openai] == [("Mar 1", "$0.0025"), ("Mar 2", "$0.000003")]
    html = chart_html(chart)
    columns = html.split('class="sc-legend"')[0].split('class="sc-col')[1:]
    assert len(columns) == 2  # one stack per period
    assert 'aria-label="Mar 1 · groq: $1.50"' in columns[0] and 'aria-label="Mar 1 · openai: $0.0025"' in columns[0]
    assert 'aria-label="Mar 2 · openai: $0.000003"' in columns[1] and "groq" not in columns[1]  # no empty bar
    assert ">groq</div>" in html and ">Day</div>" in html  # the legend and the axis


def test_spend_axis_has_round_steps() -> None:
    assert y_ticks(Decimal("104.2")) == [Decimal(v) for v in ("0", "25", "50", "75", "100", "125")]
    assert y_ticks(Decimal("2.1")) == [Decimal(v) for v in ("0", "0.5", "1.0", "1.5", "2.0", "2.5")]
    assert y_ticks(Decimal("0.004")) == [Decimal(v) for v in ("0", "0.001", "0.002", "0.003", "0.004")]
    assert y_ticks(Decimal(0)) == [Decimal(0), Decimal(1)]  # calls that cost nothing still get an axis
    assert "$0.001</span>" in chart_html(spend_chart([_row(1, "a", "0.004")], "Provider", "day"))  # tiny steps show


def test_spend_series_sums_the_tail_and_keeps_names_as_text() -> None:
    rows = [_row(1, f"m{i}", str(10 - i)) for i in range(10)]
    series = spend_series(rows, max_series=3)
    assert list(series) == ["m0", "m1", "m2", OTHER]
    assert series[OTHER]["2025-03-01"] == sum(Decimal(10 - i) for i in range(3, 10))
    hostile = '<b>x</b>" onmouseover="alert(1)'
    html = chart_html(spend_chart([_row(1, hostile, "1")], "Model", "day"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html  # drawn as text, never markup
    attributes: list[str] = []

    class Attributes(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attributes.extend(name for name, _ in attrs)

    Attributes().feed(html)
    assert set(attributes) <= {"class", "style", "role", "aria-label", "title"}  # no onmouseover from the name


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
