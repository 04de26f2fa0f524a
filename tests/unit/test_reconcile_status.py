"""The report's rules without a database: status, delta percent, likely cause, coverage, page tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from core.reconcile.report import ReconcileRow, coverage, likely_cause, out_of_tolerance_first, percent, status_of
from ui.reconcile_views import billed_vs_computed_figure, day_table, model_table, per_day

D = Decimal


@pytest.mark.parametrize(
    ("billed", "computed", "calls", "tolerance", "status"),
    [
        (D("41.25"), D("41.2500"), 3, D(1), "match"),
        (D("100"), D("99"), 1, D(1), "match"),  # exactly 1 %: within
        (D("100"), D("98.99"), 1, D(1), "under"),  # just beyond
        (D("100"), D("101.01"), 1, D(1), "over"),
        (D("0.50"), D("0.491"), 1, D(0), "match"),  # under a cent is a match whatever the tolerance
        (D("0.50"), D("0.49"), 1, D(0), "under"),  # a cent is not under a cent
        (D("0"), D("1"), 1, D(1), "not_billed"),
        (D("0"), D("0"), 2, D(1), "not_billed"),  # calls logged, billed 0: whatever they cost
        (D("5"), D("0"), 0, D(1), "under"),  # billed, nothing logged
        (None, D("3"), 1, D(1), "no_report"),
        (D("-2"), D("-2.01"), 0, D(1), "match"),  # a credit, compared by its size
    ],
)
def test_status(billed: Decimal | None, computed: Decimal, calls: int, tolerance: Decimal, status: str) -> None:
    assert status_of(billed, computed, calls, tolerance) == status


def test_delta_percent_has_two_decimals_rounded_half_even() -> None:
    assert percent(D("0.1"), D("800")) == D("0.01")  # 0.0125: half-even down
    assert percent(D("0.3"), D("800")) == D("0.04")  # 0.0375: half-even up
    assert percent(D("-0.05"), D("10.05")) == D("-0.50")
    assert str(percent(D("0"), D("41.25"))) == "0.00"
    assert percent(D("1"), D("0")) is None and percent(None, None) is None


@pytest.mark.parametrize(
    ("status", "billed", "logged", "calls", "words"),
    [
        ("over", (1000, 100), (1000, 100), 3, "tokens agree: prices differ"),
        ("under", (1000, 100), (995, 100), 3, "tokens agree: prices differ"),  # within 1 %
        ("under", (1000, 100), (500, 100), 3, "fewer tokens logged than billed: calls that were never logged"),
        ("over", (1000, 100), (2000, 100), 3, "more tokens logged than billed: calls logged twice"),
        ("under", (1000, 100), (2000, 50), 3, "differ both ways"),
        ("under", None, (10, 1), 1, "usage not fetched"),
        ("under", (0, 0), (0, 0), 0, "a charge without tokens"),
        ("not_billed", (0, 0), (10, 1), 1, "did not bill"),
        ("no_report", None, (10, 1), 1, "no bill fetched"),
        ("match", (1, 1), (1, 1), 1, "agrees"),
    ],
)
def test_the_likely_cause_in_words(
    status: str, billed: tuple[int, int] | None, logged: tuple[int, int], calls: int, words: str
) -> None:
    billed_in, billed_out = billed if billed else (None, None)
    assert words in likely_cause(status, billed_in, billed_out, logged[0], logged[1], calls)


def row(day: int, billed: str | None, computed: str, status: str, model: str | None = None) -> ReconcileRow:
    return ReconcileRow(
        "openai", date(2026, 11, day), model, D(billed) if billed else None, D(computed), 1, 0, 0, 0, 0, status, "why"
    )


def test_coverage_is_the_billed_share_logged_calls_explain_per_row() -> None:
    rows = [row(1, "10", "12", "over"), row(1, "10", "5", "under"), row(2, None, "7", "no_report")]
    assert coverage(rows) == D("0.75")  # 10 of the first, 5 of the second: a surplus hides no gap
    assert coverage([row(2, None, "7", "no_report")]) is None


def test_out_of_tolerance_rows_come_first_largest_gap_first() -> None:
    rows = [
        row(1, "10", "10", "match"),
        row(2, "10", "9", "under"),
        row(3, "10", "14", "over"),
        row(4, None, "1", "no_report"),
    ]
    assert [r.day.day for r in out_of_tolerance_first(rows)] == [3, 2, 1, 4]
    assert [t["day"] for t in day_table(rows)] == ["2026-11-03", "2026-11-02", "2026-11-01", "2026-11-04"]
    assert day_table(rows)[3]["billed"] == "not fetched"


def test_the_chart_has_both_series_and_marks_the_drifting_days() -> None:
    rows = [row(1, "10", "10", "match"), row(2, "10", "9", "under"), row(3, None, "2", "no_report")]
    assert per_day(rows) == [
        (date(2026, 11, 1), D(10), D(10), False),
        (date(2026, 11, 2), D(10), D(9), True),
        (date(2026, 11, 3), None, D(2), False),
    ]
    figure = billed_vs_computed_figure(rows)
    billed, computed, drift = figure.data
    assert list(billed.y) == [10.0, 10.0, None] and list(computed.y) == [10.0, 9.0, 2.0]
    assert computed.fill == "tonexty"  # the gap is shaded
    assert list(drift.x) == ["2026-11-02"]


def test_a_day_by_model_shows_tokens_side_by_side() -> None:
    r = ReconcileRow(
        "anthropic",
        date(2026, 11, 3),
        "claude-sonnet-4-5",
        D("41.25"),
        D("41.25"),
        5,
        550,
        50,
        500,
        50,
        "match",
        "agrees",
    )
    (line,) = model_table([r])
    assert (line["billed input tokens"], line["logged input tokens"]) == ("550", "500")
    assert (line["billed output tokens"], line["logged output tokens"]) == ("50", "50")
    assert line["billed"] == "$41.25"
