"""Release-2 price versions: every field, the key (provider, model any case, service tier),
the first-version rule, nothing-changed saves, tier validation, back-dated prices, and the
``prices`` commands. On SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.cli.main import main
from core.pricing.edits import PriceEdit, plan_price, retire_model, save_price, validate_edit
from core.pricing.versions import PriceEditError, PriceTier, all_versions, current_prices, model_history
from core.recording.audit import count_calls_since, reprice_calls
from core.recording.calls import make_call, record_batch
from core.recording.rollups import check_rollups
from core.storage.tables import PriceCorrection, PriceVersion, UsageRecord
from core.times import BEGINNING_OF_TIME

FULL = dict(
    input_per_1m="1.25",
    output_per_1m="10",
    cached_input_per_1m="0.125",
    cache_write_per_1m="1.5625",
    cache_write_1h_per_1m="2.5",
    reasoning_per_1m="12",
    cost_per_web_search="0.01",
    cost_per_request="0.0001",
    service_tier="priority",
    tiers=[
        {"above_input_tokens": 200_000, "input_per_1m": "2.5", "output_per_1m": "15"},
        {"above_input_tokens": 1_000_000, "cached_input_per_1m": "0.5", "cost_per_web_search": "0.02"},
    ],
)


def count(engine: Engine, model: type = PriceVersion) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def edit(model: str = "gpt-x", provider: str = "acme", **changes: object) -> PriceEdit:
    values: dict[str, object] = dict(provider=provider, model_name=model, input_per_1m="2", output_per_1m="8")
    values.update(changes)
    return PriceEdit(**values)  # type: ignore[arg-type]


# --- every field round-trips ----------------------------------------------------------------------


def test_every_field_round_trips(engine: Engine) -> None:
    new_id = save_price(engine, edit(**FULL))
    assert new_id is not None
    (row,) = [v for v in all_versions(engine) if v.id == new_id]
    assert row.service_tier == "priority"
    assert row.input_token_cost == Decimal("0.00000125")
    assert row.output_token_cost == Decimal("0.00001")
    assert row.cached_input_token_cost == Decimal("0.000000125")
    assert row.cache_write_token_cost == Decimal("0.0000015625")
    assert row.cache_write_1h_token_cost == Decimal("0.0000025")
    assert row.reasoning_token_cost == Decimal("0.000012")
    assert row.cost_per_web_search == Decimal("0.01")
    assert row.cost_per_request == Decimal("0.0001")
    assert row.tiers == (
        PriceTier(200_000, (("input_token_cost", Decimal("0.0000025")), ("output_token_cost", Decimal("0.000015")))),
        PriceTier(
            1_000_000, (("cached_input_token_cost", Decimal("0.0000005")), ("cost_per_web_search", Decimal("0.02")))
        ),
    )
    assert row.effective_from == BEGINNING_OF_TIME  # the first version of its key
    with engine.connect() as conn:
        stored = conn.execute(select(PriceVersion.tiers).where(PriceVersion.id == new_id)).scalar_one()
    assert json.loads(stored) == [
        {"above_input_tokens": 200000, "input_token_cost": "0.0000025", "output_token_cost": "0.000015"},
        {"above_input_tokens": 1000000, "cached_input_token_cost": "0.0000005", "cost_per_web_search": "0.02"},
    ]
    in_force = [p for p in current_prices(engine) if p.provider == "acme"]
    assert [(p.model_name, p.service_tier) for p in in_force] == [("gpt-x", "priority")]


def test_service_tier_is_part_of_the_key(engine: Engine) -> None:
    standard = save_price(engine, edit())
    batch = save_price(engine, edit(input_per_1m="1", output_per_1m="4", service_tier="batch"))
    assert standard and batch
    rows = {p.service_tier: p for p in current_prices(engine, provider="acme")}
    assert set(rows) == {"standard", "batch"}
    assert rows["batch"].effective_from == BEGINNING_OF_TIME  # first version of ITS key
    retire_model(engine, "acme", "gpt-x", "admin", service_tier="batch")
    assert [p.service_tier for p in current_prices(engine, provider="acme")] == ["standard"]


# --- first version from the beginning; later ones from now -----------------------------------------


def test_first_version_is_in_force_from_the_beginning_and_later_ones_from_now(engine: Engine) -> None:
    first = save_price(engine, edit())
    second = save_price(engine, edit(input_per_1m="3"))
    versions = {v.id: v for v in all_versions(engine)}
    assert first and second
    assert versions[first].effective_from == BEGINNING_OF_TIME
    assert datetime.now(UTC) - versions[second].effective_from < timedelta(minutes=1)


def test_a_chosen_date_wins_for_the_first_version_too(engine: Engine) -> None:
    day = datetime(2025, 3, 1, tzinfo=UTC)
    new_id = save_price(engine, edit(effective_from=day))
    assert {v.id: v for v in all_versions(engine)}[new_id].effective_from == day  # type: ignore[index]


def test_first_price_in_the_form_reprices_a_past_estimated_call(
    engine: Engine, db_url: str, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    record_batch(engine, [make_call("acme", "newbie", 1_000_000, 0, timestamp="2025-05-01T00:00:00Z")])
    assert save_price(engine, edit("newbie")) is not None  # no date chosen
    assert main(["reprice", "--only-estimated"]) == 0
    assert "1 of 1 estimated calls re-priced: $1.00 -> $2.00" in capsys.readouterr().out


# --- nothing changed; names in any case ------------------------------------------------------------


def test_unchanged_values_write_nothing(engine: Engine) -> None:
    assert save_price(engine, edit(**FULL)) is not None
    before = count(engine)
    assert save_price(engine, edit(**FULL, note="same again")) is None
    assert plan_price(engine, edit(**FULL)).unchanged
    assert count(engine) == before


def test_names_that_differ_only_by_case_are_one_key(engine: Engine) -> None:
    assert save_price(engine, edit("Rocket", "acme")) is not None
    before = count(engine)
    assert save_price(engine, edit("ROCKET", "ACME")) is None
    assert save_price(engine, edit("rocket", " Acme ", service_tier="STANDARD")) is None
    assert count(engine) == before
    changed = save_price(engine, edit("ROCKET", "ACME", input_per_1m="3"))
    assert changed is not None
    rows = [p for p in current_prices(engine) if p.provider == "acme"]
    assert [(p.model_name, p.input_token_cost) for p in rows] == [("Rocket", Decimal("0.000003"))]


def test_a_retired_price_saved_again_is_a_change(engine: Engine) -> None:
    save_price(engine, edit())
    retire_model(engine, "acme", "gpt-x", "admin")
    assert save_price(engine, edit()) is not None


def test_equal_to_the_price_in_force_at_the_chosen_date_is_nothing(engine: Engine) -> None:
    save_price(engine, edit(effective_from=datetime(2025, 1, 1, tzinfo=UTC)))
    save_price(engine, edit(input_per_1m="3", effective_from=datetime(2025, 6, 1, tzinfo=UTC)))
    before = count(engine)
    assert save_price(engine, edit(effective_from=datetime(2025, 3, 1, tzinfo=UTC))) is None
    assert save_price(engine, edit(input_per_1m="3", effective_from=datetime(2025, 7, 1, tzinfo=UTC))) is None
    assert count(engine) == before


# --- validation ---------------------------------------------------------------------------------------

TIER_CASES = [
    (
        [{"above_input_tokens": 200_000, "input_per_1m": "3"}, {"above_input_tokens": 100_000, "input_per_1m": "4"}],
        "strictly increasing",
    ),
    (
        [{"above_input_tokens": 200_000, "input_per_1m": "3"}, {"above_input_tokens": 200_000, "input_per_1m": "4"}],
        "appears twice",
    ),
    ([{"above_input_tokens": 200_000, "speed": "3"}], "unknown field(s) speed"),
    ([{"above_input_tokens": -1, "input_per_1m": "3"}], "above_input_tokens -1 is negative"),
    ([{"above_input_tokens": 200_000, "input_per_1m": "-3"}], "'-3' is negative"),
    ([{"above_input_tokens": 200_000}], "names no rate"),
    ([{"input_per_1m": "3"}], "above_input_tokens is missing"),
    ([{"above_input_tokens": "lots", "input_per_1m": "3"}], "not a whole number"),
    ('[{"above_input_tokens": 5,', "not JSON"),
    ('[{"above_input_tokens": Infinity, "input_per_1m": "3"}]', "not a whole number"),
    ('[{"above_input_tokens": 2.5, "input_per_1m": "3"}]', "not a whole number"),
    ('{"above_input_tokens": 5}', "expected a list"),
]


@pytest.mark.parametrize(("tiers", "needle"), TIER_CASES, ids=[c[1] for c in TIER_CASES])
def test_bad_tiers_are_refused_by_name_and_nothing_is_written(engine: Engine, tiers: object, needle: str) -> None:
    with pytest.raises(PriceEditError) as refused:
        validate_edit(edit(tiers=tiers))
    assert refused.value.field == "tiers"
    assert str(refused.value).startswith("Long-context tiers: ")
    assert needle in str(refused.value)
    before = count(engine)
    with pytest.raises(PriceEditError):
        save_price(engine, edit(tiers=tiers))
    assert count(engine) == before


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        (dict(service_tier="turbo"), "service_tier", "Service tier: 'turbo' is not one of standard, batch"),
        (dict(reasoning_per_1m="0.0000000000001"), "reasoning_per_1m", "more than 6 decimal places per 1M tokens"),
        (dict(cache_write_1h_per_1m="-2"), "cache_write_1h_per_1m", "Cache write (1 hour) per 1M tokens (USD): '-2'"),
        (dict(cost_per_web_search="0.0000000000001"), "cost_per_web_search", "more than 12 decimal places"),
        (dict(cost_per_web_search="5000"), "cost_per_web_search", "Per web search (USD): '5000' is above"),
        (dict(model_name=""), "model", "Model name: empty value"),
    ],
)
def test_form_fields_are_named_by_their_label(changes: dict, field: str, needle: str) -> None:
    with pytest.raises(PriceEditError) as refused:
        validate_edit(edit(**changes))
    assert refused.value.field == field
    assert needle in str(refused.value)
    assert "_per_1m" not in str(refused.value)


def test_a_change_over_100x_is_flagged_and_under_is_not(engine: Engine) -> None:
    save_price(engine, edit(input_per_1m="2", output_per_1m="8"))
    plan = plan_price(engine, edit(input_per_1m="0.000002", output_per_1m="8"))
    assert [c.label for c in plan.big_changes] == ["Input per 1M tokens (USD)"]
    assert plan.big_changes[0].factor_text == "1,000,000x"
    assert "lower" in plan.big_changes[0].describe()
    assert not plan_price(engine, edit(input_per_1m="200", output_per_1m="0.08")).big_changes  # exactly 100x
    assert [c.label for c in plan_price(engine, edit(cached_input_per_1m="201")).big_changes] == [
        "Cached input per 1M tokens (USD)"  # against the input rate it fell back to
    ]


# --- back-dated versions: count and audited reprice -------------------------------------------------


def test_backdated_price_counts_the_calls_after_it_and_reprices_them_audited(engine: Engine) -> None:
    save_price(engine, edit("Rocket", effective_from=datetime(2025, 1, 1, tzinfo=UTC)))  # $2 / $8 per 1M
    calls = [
        make_call("acme", "rocket", 1_000_000, 0, request_id="before", timestamp="2025-05-01T00:00:00Z"),
        make_call("acme", "ROCKET", 1_000_000, 0, request_id="after-1", timestamp="2025-06-02T00:00:00Z"),
        make_call("acme", "rocket", 1_000_000, 0, request_id="after-2", timestamp="2025-06-03T00:00:00Z"),
        make_call("acme", "other", 1_000_000, 0, request_id="other", timestamp="2025-06-03T00:00:00Z"),
    ]
    record_batch(engine, calls)
    since = datetime(2025, 6, 1, tzinfo=UTC)
    assert count_calls_since(engine, "ACME", "rocket", since) == 2
    assert count_calls_since(engine, "acme", "rocket", since, "batch") == 0
    save_price(engine, edit("rocket", input_per_1m="3", effective_from=since))
    result = reprice_calls(engine, "acme", "rocket", since, "back-dated price")
    assert (result.examined, result.repriced) == (2, 2)
    assert (result.cost_before, result.cost_after) == (Decimal(4), Decimal(6))
    with engine.connect() as conn:
        costs = dict(conn.execute(select(UsageRecord.request_id, UsageRecord.cost_total)).all())
        reasons = conn.execute(select(PriceCorrection.reason)).scalars().all()
    assert costs == {"before": Decimal(2), "after-1": Decimal(3), "after-2": Decimal(3), "other": Decimal(1)}
    assert reasons == ["back-dated price", "back-dated price"]
    assert check_rollups(engine).matches
    again = reprice_calls(engine, "acme", "rocket", since, "again")
    assert (again.examined, again.repriced) == (2, 0)


# --- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def cli_db(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", db_url)
    return engine


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


GOOD_AND_BAD = [
    {
        "provider": "acme",
        "model": "Rocket",
        "input_token_cost": "0.000002",
        "output_token_cost": 0.000008,
        "cached_input_token_cost": "0.0000002",
        "cache_write_token_cost": "0.0000025",
        "cache_write_1h_token_cost": "0.000004",
        "reasoning_token_cost": "0.00001",
        "cost_per_web_search": "0.01",
        "cost_per_request": "0",
        "tiers": [{"above_input_tokens": 200000, "input_token_cost": "0.000004"}],
        "note": "launch",
    },
    {
        "provider": "acme",
        "model": "rocket",
        "service_tier": "batch",
        "input_token_cost": "0.000001",
        "output_token_cost": "0.000004",
    },
    {"provider": "acme", "model": "rocket", "input_token_cost": "-1", "output_token_cost": "1"},
    {
        "provider": "acme",
        "model": "ROCKET",
        "input_token_cost": "0.000003",
        "output_token_cost": "0.000008",
        "effective_from": "2025-06-01T00:00:00Z",
    },
    {
        "provider": "acme",
        "model": "rocket",
        "input_token_cost": "0.000001",
        "output_token_cost": "0.000001",
        "tiers": [
            {"above_input_tokens": 5, "input_token_cost": "0.000001"},
            {"above_input_tokens": 5, "input_token_cost": "0.000002"},
        ],
    },
    {
        "provider": "acme",
        "model": "rocket",
        "service_tier": "turbo",
        "input_token_cost": "0.000001",
        "output_token_cost": "0.000001",
    },
    {
        "provider": "acme",
        "model": "rocket",
        "input_token_cost": "0.000001",
        "output_token_cost": "0.000001",
        "colour": "red",
    },
]


def write_jsonl(path: Path, rows: list[dict], extra: str = "") -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + extra)
    return path


def test_prices_import_takes_good_lines_and_names_bad_ones(cli_db: Engine, tmp_path: Path, capsys) -> None:
    path = write_jsonl(tmp_path / "prices.jsonl", GOOD_AND_BAD, "not json\n")
    code, out, err = run(capsys, "prices", "import", str(path))
    assert code == 0
    assert "3 price versions taken, 0 unchanged, 5 refused" in out
    lines = err.strip().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["line 3", "line 5", "line 6", "line 7", "line 8"]
    assert "input_token_cost: '-1' is negative" in lines[0]
    assert "appears twice" in lines[1]
    assert "service_tier: 'turbo'" in lines[2]
    assert "unknown field(s) colour" in lines[3]
    assert "broken JSON" in lines[4]
    history = model_history(cli_db, "acme", "rocket")
    assert [(v.service_tier, v.effective_from, v.source) for v in history] == [
        ("standard", BEGINNING_OF_TIME, "import"),
        ("batch", BEGINNING_OF_TIME, "import"),
        ("standard", datetime(2025, 6, 1, tzinfo=UTC), "import"),
    ]
    assert history[0].reasoning_token_cost == Decimal("0.00001") and history[0].note == "launch"
    # again: a line equal to the version in force at its time writes nothing
    again = write_jsonl(tmp_path / "again.jsonl", [GOOD_AND_BAD[1], GOOD_AND_BAD[3]])
    code, out, _ = run(capsys, "prices", "import", str(again))
    assert code == 0 and "0 price versions taken, 2 unchanged, 0 refused" in out


def test_prices_import_csv_with_a_tiers_cell(cli_db: Engine, tmp_path: Path, capsys) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "provider,model,input_token_cost,output_token_cost,service_tier,tiers,effective_from\n"
        "acme,csv-model,0.000001,0.000002,flex,"
        '"[{""above_input_tokens"": 128000, ""output_token_cost"": ""0.000004""}]",\n'
        "acme,csv-model,abc,0.000002,,,\n"
        "acme,csv-model,0.000002,0.000002,flex,,2025-02-01\n"
    )
    code, out, err = run(capsys, "prices", "import", str(path))
    assert code == 0 and "2 price versions taken" in out
    assert err.startswith("line 3: input_token_cost: 'abc' is not a number")
    rows = model_history(cli_db, "acme", "csv-model")
    assert rows[0].tiers == (PriceTier(128000, (("output_token_cost", Decimal("0.000004")),)),)
    assert rows[1].effective_from == datetime(2025, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "cannot read"), ("provider,model\nacme,x\n", "missing column(s) input_token_cost")],
)
def test_unreadable_price_file_exits_2(
    cli_db: Engine, tmp_path: Path, capsys, content: str | None, needle: str
) -> None:
    path = tmp_path / "prices.csv"
    if content is not None:
        path.write_text(content)
    before = count(cli_db)
    code, out, err = run(capsys, "prices", "import", str(path))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert count(cli_db) == before


def test_one_transaction_for_all_good_lines(cli_db: Engine, tmp_path: Path, capsys, monkeypatch) -> None:
    import core.pricing.edits

    real = core.pricing.edits._insert_version
    calls = {"n": 0}

    def failing(conn, **values):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(conn, **values)

    monkeypatch.setattr(core.pricing.edits, "_insert_version", failing)
    path = write_jsonl(tmp_path / "p.jsonl", GOOD_AND_BAD[:2])
    before = count(cli_db)
    with pytest.raises(RuntimeError):
        main(["prices", "import", str(path)])
    assert count(cli_db) == before


def test_prices_list_and_history_json(cli_db: Engine, tmp_path: Path, capsys) -> None:
    run(capsys, "prices", "import", str(write_jsonl(tmp_path / "p.jsonl", GOOD_AND_BAD)))
    code, out, _ = run(capsys, "prices", "list", "--provider", "ACME", "--json")
    assert code == 0
    listed = json.loads(out)["prices"]
    assert [(p["model"], p["service_tier"]) for p in listed] == [("Rocket", "standard"), ("rocket", "batch")]
    assert listed[0]["input_token_cost"] == "0.000003"  # the 2025-06-01 version is in force now
    assert listed[0]["effective_from"] == "2025-06-01T00:00:00+00:00"
    code, out, _ = run(capsys, "prices", "history", "--provider", "acme", "--model", "ROCKET", "--json")
    assert code == 0
    versions = json.loads(out)["versions"]
    assert [v["service_tier"] for v in versions] == ["standard", "batch", "standard"]
    first = versions[0]
    assert first["tiers"] == [{"above_input_tokens": 200000, "input_token_cost": "0.000004"}]
    assert first["output_token_cost"] == "0.000008" and first["cost_per_web_search"] == "0.01"
    assert first["cost_per_request"] == "0" and first["effective_from"] == "1970-01-01T00:00:00+00:00"
    assert all(isinstance(v[k], str | None) for v in versions for k in v if k.endswith(("_cost", "_search")))
    code, out, _ = run(capsys, "prices", "list", "--provider", "acme")
    assert code == 0 and "acme / rocket [batch] always, import" in out
    code, _, err = run(capsys, "prices", "history", "--provider", "acme", "--model", "nothing")
    assert code == 2 and "no price versions for acme/nothing" in err
