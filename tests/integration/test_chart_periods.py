"""The spend chart draws every period, zero where nothing was spent, and labels a partial week by its first day
(issue 22, point 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.recording.calls import make_call, record_batch
from core.reporting.aggregates import axis_periods, over_time
from ui.charts import chart_html, spend_chart

UTC_ZONE = ZoneInfo("UTC")


def test_days_without_spend_are_on_the_axis_at_zero(engine: Engine) -> None:
    days = {"a": datetime(2026, 11, 2, 10, tzinfo=UTC), "b": datetime(2026, 11, 5, 10, tzinfo=UTC)}
    record_batch(engine, [make_call("huggingface", "m", 10**6, 0, timestamp=t, request_id=k) for k, t in days.items()])
    start, end = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC)
    rows = over_time(engine, start, end, UTC_ZONE, "day", "provider")
    chart = spend_chart(rows, "Provider", "day", axis=axis_periods(start, end, UTC_ZONE, "day"))
    assert chart.periods == ("Nov 2", "Nov 3", "Nov 4", "Nov 5")  # was Nov 2, Nov 5: the gap hid
    assert [b.period for b in chart.bars] == ["Nov 2", "Nov 3", "Nov 4", "Nov 5"]
    assert [b.spend for b in chart.bars] == [1, 0, 0, 1]
    html = chart_html(chart)
    assert html.count('class="sc-col') == 4 and html.count('class="sc-bar"') == 2  # two empty days, drawn empty


def test_a_partial_first_week_is_labelled_by_the_periods_first_day(engine: Engine) -> None:
    wednesday = datetime(2026, 11, 4, 9, tzinfo=UTC)
    record_batch(engine, [make_call("huggingface", "m", 1_000_000, 0, timestamp=wednesday, request_id="w")])
    start, end = datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    assert axis_periods(start, end, UTC_ZONE, "week") == [date(2026, 11, 4), date(2026, 11, 9), date(2026, 11, 16)]
    (row,) = over_time(engine, start, end, UTC_ZONE, "week")
    assert row.period == date(2026, 11, 4)  # was Nov 2, the Monday before the period began
    chart = spend_chart([row], "Provider", "week", axis=axis_periods(start, end, UTC_ZONE, "week"))
    assert chart.periods == ("Week of Nov 4", "Week of Nov 9", "Week of Nov 16")
