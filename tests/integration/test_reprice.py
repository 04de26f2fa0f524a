"""``reprice --only-estimated``: estimated calls get the real price once it exists; nothing else is rewritten."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

import core.recording.audit
from core.cli.main import main
from core.pricing.edits import PriceEdit, save_price
from core.recording.calls import make_call, record_batch
from core.recording.rollups import check_rollups
from core.storage.tables import PriceCorrection, UsageRecord

NOW = datetime(2025, 7, 1, tzinfo=UTC)


def at(day: int) -> str:
    return f"2025-06-{day:02d}T12:00:00Z"


@pytest.fixture
def mixed(engine: Engine) -> Engine:
    """Estimated calls for acme/rocket (June 2 and June 20), one for an unpriced model, and priced calls."""
    calls = [
        make_call("acme", "rocket", 1_000, 200, request_id="early", timestamp=at(2), now=NOW),
        make_call("acme", "rocket", 3_000, 700, request_id="late-1", timestamp=at(20), now=NOW),
        make_call("acme", "rocket", 5, 0, request_id="late-2", timestamp=at(21), now=NOW),
        make_call("acme", "still-unpriced", 400, 40, request_id="other", timestamp=at(22), now=NOW),
        make_call("huggingface", "openai/gpt-oss-120b:groq", 1_000, 500, request_id="hf", timestamp=at(20), now=NOW),
        make_call("huggingface", "gpt-oss-120b", 10, 5, request_id="hf-short", timestamp=at(3), now=NOW),
    ]
    record_batch(engine, calls)
    return engine


def snapshot(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                UsageRecord.request_id,
                UsageRecord.cost_input,
                UsageRecord.cost_output,
                UsageRecord.cost_total,
                UsageRecord.matched_by,
                UsageRecord.pricing_id,
            )
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def corrections(engine: Engine) -> list[PriceCorrection]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(PriceCorrection).order_by(PriceCorrection.id)))


def save_rocket_price(engine: Engine) -> int:
    edit = PriceEdit(
        "acme", "rocket", "2", "8", changed_by="admin", effective_from=datetime(2025, 1, 1, tzinfo=UTC)
    )  # $2 and $8 per 1M tokens, in force since January
    return save_price(engine, edit)


def test_reprice_since_changes_only_the_estimated_calls_from_that_day(
    mixed: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    before = snapshot(mixed)
    assert {k for k, v in before.items() if v[3] == "estimate"} == {"early", "late-1", "late-2", "other"}
    price_id = save_rocket_price(mixed)
    monkeypatch.setenv("DATABASE_URL", db_url)

    assert main(["reprice", "--only-estimated", "--since", "2025-06-15", "--json"]) == 0
    report = capsys.readouterr().out
    assert '"repriced": 2' in report and '"examined": 3' in report

    after = snapshot(mixed)
    late_1 = 3_000 * Decimal("0.000002") + 700 * Decimal("0.000008")
    assert after["late-1"] == (Decimal("0.006"), Decimal("0.0056"), late_1, "exact", price_id)
    assert after["late-2"] == (Decimal("0.00001"), Decimal(0), Decimal("0.00001"), "exact", price_id)
    for untouched in ("early", "other", "hf", "hf-short"):  # before --since, still unpriced, or priced already
        assert after[untouched] == before[untouched], untouched

    kept = corrections(mixed)
    assert [(c.old_cost_total, c.new_cost_total, c.old_matched_by, c.new_matched_by) for c in kept] == [
        (before["late-1"][2], late_1, "estimate", "exact"),
        (before["late-2"][2], Decimal("0.00001"), "estimate", "exact"),
    ]
    assert all(c.new_pricing_id == price_id and c.old_pricing_id is None for c in kept)
    assert check_rollups(mixed).matches


def test_reprice_without_since_and_again_changes_nothing_more(
    mixed: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    before = snapshot(mixed)
    save_rocket_price(mixed)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["reprice", "--only-estimated"]) == 0
    assert "3 of 4 estimated calls re-priced" in capsys.readouterr().out
    once = snapshot(mixed)
    assert once["early"][2] == 1_000 * Decimal("0.000002") + 200 * Decimal("0.000008")
    assert once["other"] == before["other"]
    assert check_rollups(mixed).matches

    assert main(["reprice", "--only-estimated"]) == 0
    assert "0 of 1 estimated calls re-priced" in capsys.readouterr().out
    assert snapshot(mixed) == once
    assert len(corrections(mixed)) == 3


def test_reprice_is_one_transaction(mixed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure on the third call leaves the first two as they were: all or nothing."""
    before = snapshot(mixed)
    save_rocket_price(mixed)
    real = core.recording.audit.breakdown
    seen = []

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args)
        if len(seen) == 3:
            raise RuntimeError("disk unplugged")
        return real(*args, **kwargs)

    monkeypatch.setattr(core.recording.audit, "breakdown", failing)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        core.recording.audit.reprice_estimated(mixed)
    assert snapshot(mixed) == before
    assert corrections(mixed) == []
    assert check_rollups(mixed).matches


def test_reprice_as_the_overview_advises_it_works_with_or_without_the_flag(
    mixed: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The Overview says `python -m core reprice`; that exact command re-prices the estimated calls."""
    save_rocket_price(mixed)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["reprice"]) == 0
    assert "3 of 4 estimated calls re-priced" in capsys.readouterr().out
    assert main(["reprice", "--only-estimated"]) == 0  # the old spelling still works
    assert "0 of 1 estimated calls re-priced" in capsys.readouterr().out
