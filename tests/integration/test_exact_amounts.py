"""Formulas and verification show exact amounts, so their lines add up (issue 22, points 6 and 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, update

from core.cli.main import main
from core.money import format_exact_usd
from core.pricing.formula import formula_lines
from core.pricing.lookup import calculate_cost
from core.recording.calls import make_call, record_usage
from core.storage.tables import UsageRecord
from ui.views import verification_table


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1.0015", "$1.0015"),
        ("1000.000001", "$1,000.000001"),
        ("12.5", "$12.50"),
        ("0.0025", "$0.0025"),
        ("3", "$3.00"),
        ("-1.005", "-$1.005"),
        ("0", "$0.00"),
    ],
)
def test_exact_usd_keeps_every_digit(amount: str, shown: str) -> None:
    assert format_exact_usd(Decimal(amount)) == shown


def test_formula_lines_of_a_call_over_a_dollar_add_up(engine: Engine) -> None:
    # HuggingFace defaults: 0.000001 in, 0.000003 out; 1,000,000 in = $1 exactly, 500 out = $0.0015
    b = calculate_cost(engine, "huggingface", "some-model", 1_000_000, 500)
    lines = formula_lines(b)
    assert "cost_input = 1000000 * 0.000001 = $1.00" in lines
    assert "cost_output = 500 * 0.000003 = $0.0015" in lines
    assert lines[-1] == "cost_total = $1.0015"  # was "$1.00": the lines did not add up


def test_cost_command_prints_exact_lines(engine: Engine, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", str(engine.url.render_as_string(hide_password=False)))
    args = ["cost", "--provider", "huggingface", "--model", "m", "--input-tokens", "1000000", "--output-tokens", "500"]
    assert main(args) == 0
    assert "cost_total = $1.0015" in capsys.readouterr().out


def test_verification_of_two_costs_that_differ_below_a_cent_prints_them_apart(engine: Engine) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    stored = record_usage(engine, make_call("huggingface", "m", 1_000_000, 500, timestamp=an_hour_ago, request_id="r1"))
    with engine.begin() as conn:  # a stored cost a tenth of a cent off: a MISMATCH that must be visible
        conn.execute(update(UsageRecord).where(UsageRecord.id == stored.id).values(cost_total=Decimal("1.0025")))
    from core.recording.audit import verify_call

    v = verify_call(engine, log_id=stored.id)
    assert v is not None
    costs = list(verification_table(v)["Cost"])
    assert costs[0] == "$1.0025" and costs[1] == "$1.0015"  # were both "$1.00" next to "MISMATCH"
