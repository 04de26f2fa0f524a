"""The Pricing page's edit form through AppTest: both units shown as typed, confirmation above 100x,
nothing-changed, back-dated warning with the count of calls and the audited re-price, the form after a
future-dated save, and a new model's first price reaching back to past calls."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.recording.calls import make_call, record_batch
from core.storage.engine import make_engine
from core.storage.tables import PriceCorrection, PriceVersion, UsageRecord

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery staple"
HF = "huggingface / openai/gpt-oss-120b:groq"


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPENDBOARD_ADMIN_PASSWORD", PASSWORD)
    return url


def signed_in() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["period"] = "Last 30 days"
    at.run()
    at.switch_page("app_pages/pricing.py").run()
    at.text_input(key="admin_password").set_value(PASSWORD)
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    return at


def versions(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(PriceVersion)).scalar_one())
    engine.dispose()
    return n


def texts(elements) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(str(e.value) for e in elements)


def test_both_units_are_shown_as_the_user_types(app_db: str) -> None:
    at = signed_in()
    k = "(add a new model)|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("0.000002").run()
    at.text_input(key=f"output_per_1m_{k}").set_value("8").run()
    captions = texts(at.caption)
    assert "$0.000002 per 1M tokens = $0.000000000002 per token (a per-token price?" in captions
    assert "$8.00 per 1M tokens = $0.000008 per token" in captions
    at.text_input(key=f"cost_per_web_search_{k}").set_value("0.01").run()
    assert "$0.01" in texts(at.caption)


def test_the_preview_says_what_save_will_say(app_db: str) -> None:
    """Issue 22, point 13: the preview showed $10,000.00 for 10000.000001, then Save refused it."""
    at = signed_in()
    k = "(add a new model)|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("10000.000001").run()
    captions = texts(at.caption)
    assert "Save will refuse this: Input per 1M tokens (USD): '10000.000001' is above the sane maximum" in captions
    assert "$10,000.00" not in captions
    at.text_input(key=f"input_per_1m_{k}").set_value("9999.999999").run()
    assert "$9,999.999999 per 1M tokens = $0.009999999999 per token" in texts(at.caption)  # every digit


def test_a_change_over_100x_needs_confirmation(app_db: str) -> None:
    at = signed_in()
    at.selectbox(key="edit_choice").set_value(HF).run()
    k = f"{HF}|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("0.000001").run()  # the per-token price typed per 1M
    assert "more than 100x" in texts(at.warning) and "1,000,000x lower" in texts(at.warning)
    box = at.checkbox(key=f"confirm_{k}")
    assert box.label == "Yes, change it by 1,000,000x"
    before = versions(app_db)
    at.button(key=f"save_{k}").click().run()
    assert "tick the box to confirm" in texts(at.error)
    assert versions(app_db) == before
    at.checkbox(key=f"confirm_{k}").check().run()
    at.button(key=f"save_{k}").click().run()
    assert not at.error, texts(at.error)
    assert "Saved as price version" in texts(at.success)
    assert versions(app_db) == before + 1


def test_saving_unchanged_values_says_nothing_changed(app_db: str) -> None:
    at = signed_in()
    at.selectbox(key="edit_choice").set_value(HF).run()
    before = versions(app_db)
    at.text_input(key=f"note_{HF}|0").set_value("only a note").run()
    at.button(key=f"save_{HF}|0").click().run()
    assert "Nothing changed" in texts(at.info)
    assert not at.success and not at.error
    assert versions(app_db) == before


def test_a_backdated_price_says_how_many_calls_it_reaches_and_offers_the_reprice(app_db: str) -> None:
    at = signed_in()
    engine = make_engine(app_db)
    now = datetime.now(UTC)
    record_batch(
        engine,
        [
            make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, timestamp=now - timedelta(days=2)),
            make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, timestamp=now - timedelta(days=1)),
            make_call("huggingface", "openai/gpt-oss-120b:groq", 1000, 500, timestamp=now - timedelta(days=20)),
        ],
    )
    at.selectbox(key="edit_choice").set_value(HF).run()
    k = f"{HF}|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("2").run()
    assert not at.warning  # from now: nothing reaches back
    at.date_input(key=f"since_{k}").set_value(date.today() - timedelta(days=5)).run()
    warning = texts(at.warning)
    assert "2 stored calls of huggingface/openai/gpt-oss-120b:groq fall after the start" in warning
    assert "MISMATCH" in warning
    at.checkbox(key=f"reprice_{k}").check().run()
    at.button(key=f"save_{k}").click().run()
    assert not at.error, texts(at.error)
    assert "Re-priced 2 of 2 calls: $0.005 -> $0.007" in texts(at.success)  # 0.0025 -> 0.0035 each
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PriceCorrection)).scalar_one() == 2
        costs = sorted(conn.execute(select(UsageRecord.cost_total)).scalars())
    assert costs == [Decimal("0.0025"), Decimal("0.0035"), Decimal("0.0035")]
    engine.dispose()


def test_after_a_future_dated_save_the_form_shows_todays_price(app_db: str) -> None:
    at = signed_in()
    at.selectbox(key="edit_choice").set_value(HF).run()
    k = f"{HF}|0"
    at.text_input(key=f"input_per_1m_{k}").set_value("5").run()
    at.date_input(key=f"since_{k}").set_value(date.today() + timedelta(days=30)).run()
    at.button(key=f"save_{k}").click().run()
    assert "Saved as price version" in texts(at.success)
    assert at.text_input(key=f"input_per_1m_{HF}|1").value == "1"  # in force today, not the future 5


def test_a_new_models_first_price_reprices_its_past_estimated_call(app_db: str, capsys) -> None:
    at = signed_in()
    engine = make_engine(app_db)
    record_batch(engine, [make_call("acme", "newbie", 1_000_000, 0, timestamp="2025-05-01T00:00:00Z")])
    engine.dispose()
    k = "(add a new model)|0"
    at.text_input(key=f"p_{k}").set_value("acme")
    at.text_input(key=f"m_{k}").set_value("newbie")
    at.text_input(key=f"input_per_1m_{k}").set_value("2")
    at.text_input(key=f"output_per_1m_{k}").set_value("8").run()
    assert "first price of its key" in texts(at.warning)  # reaches back to the stored call
    at.button(key=f"save_{k}").click().run()
    assert "Saved as price version" in texts(at.success)
    capsys.readouterr()
    assert main(["reprice", "--only-estimated"]) == 0
    assert "1 of 1 estimated calls re-priced: $1.00 -> $2.00" in capsys.readouterr().out


def test_the_overview_advice_names_a_command_that_works(app_db: str, capsys) -> None:
    import shlex

    from core.reporting.aggregates import Totals
    from ui.views import estimate_notice

    notice = estimate_notice(Totals(calls=1, estimated_calls=1, estimated_cost=Decimal(1)))
    assert notice is not None
    command = notice.split("`")[1]
    assert command == "python -m core reprice --only-estimated"
    signed_in()  # creates the tables and prices
    assert main(shlex.split(command)[3:]) == 0


def test_editing_a_tiered_price_keeps_its_tiers(app_db: str) -> None:
    from core.pricing.edits import PriceEdit, save_price
    from core.pricing.versions import PriceTier, current_prices

    at = signed_in()
    engine = make_engine(app_db)
    tiers = [{"above_input_tokens": 200_000, "input_per_1m": "2.5", "cost_per_web_search": "0.02"}]
    save_price(engine, PriceEdit("acme", "long", "1.25", "10", service_tier="batch", tiers=tiers))
    at.run()
    label = "acme / long (batch)"
    at.selectbox(key="edit_choice").set_value(label).run()
    k = f"{label}|0"
    assert at.text_input(key=f"input_per_1m_{k}").value == "1.25"
    at.text_input(key=f"output_per_1m_{k}").set_value("12").run()
    at.button(key=f"save_{k}").click().run()
    assert "Saved as price version" in texts(at.success), texts(at.error)
    (row,) = [p for p in current_prices(engine, provider="acme")]
    assert (row.service_tier, row.output_token_cost) == ("batch", Decimal("0.000012"))
    assert row.tiers == (
        PriceTier(200_000, (("input_token_cost", Decimal("0.0000025")), ("cost_per_web_search", Decimal("0.02")))),
    )
    engine.dispose()


def test_history_records_the_signed_in_session_and_is_searchable(app_db: str) -> None:
    """Issue 22, point 14: "Changed by" was free text anyone signed in could set; the history was not searchable."""
    at = signed_in()
    assert not [w for w in at.text_input if w.label == "Changed by"]  # nobody types who they are
    at.selectbox(key="edit_choice").set_value(HF).run()
    k = f"{HF}|0"
    at.text_input(key=f"output_per_1m_{k}").set_value("3.5").run()
    at.text_input(key=f"note_{k}").set_value("provider cut the price").run()
    at.button(key=f"save_{k}").click().run()
    assert "Saved as price version" in texts(at.success), texts(at.error)
    history = _history(at)
    newest = history.iloc[0]
    assert newest["Who"].startswith("admin (browser session ") and newest["Note"] == "provider cut the price"
    at.text_input(key="history_search").set_value("cut the price").run()
    found = _history(at)
    assert len(found) == 1 and found.iloc[0]["Model"] == newest["Model"]
    at.text_input(key="history_search").set_value("no such words anywhere").run()
    assert len(_history(at)) == 0


def _history(at: AppTest):  # type: ignore[no-untyped-def]
    (table,) = [d.value for d in at.dataframe if "In force from" in d.value.columns and "Who" in d.value.columns]
    return table
