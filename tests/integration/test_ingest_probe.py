"""Issue 19, points 4-6 and 9: a bad item is that item's refusal, a database that is down is a 503."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from core.ingest.keys import create_key
from core.storage.key_tables import RejectedIngestion
from core.storage.tables import UsageRecord

CALLS = "/api/v1/calls"
TRACES = "/v1/traces"
LITELLM = "/api/v1/litellm"


class Sender:
    def __init__(self, client: TestClient, key: str, engine: Engine) -> None:
        self.client = client
        self.key = key
        self.engine = engine

    def post(self, path: str, body: object = None, *, content: bytes | None = None, key: str | None = None):  # type: ignore[no-untyped-def]
        data = json.dumps(body).encode() if content is None else content
        headers = {"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"}
        return self.client.post(path, content=data, headers=headers)

    def stored(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


@pytest.fixture
def sender(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sender]:
    import routes.ingest
    from routes.standalone import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    key = create_key(engine, "probe").key
    with TestClient(app, raise_server_exceptions=False) as client:  # lifespan: the budget loop, as served
        yield Sender(client, key, engine)
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def now_iso(minutes: int = 1) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def good(i: int) -> dict[str, object]:
    return {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10 + i,
        "output_tokens": 5,
        "timestamp": now_iso(),
    }


BAD_ITEMS = [
    ({"timestamp": "0001-01-01T00:00:00+05:00"}, "timestamp"),
    ({"timestamp": "9999-12-31T23:00:00-05:00"}, "timestamp"),
    ({"latency_ms": 1e308}, "latency_ms"),
    ({"latency_ms": 7 * 24 * 3600 * 1000 + 1}, "latency_ms"),
    ({"input_tokens": 10**12, "provider": "openai", "model": "o1-pro"}, "cost_total"),
]


@pytest.mark.parametrize(("change", "field"), BAD_ITEMS, ids=[f for _, f in BAD_ITEMS])
def test_a_bad_item_is_its_own_refusal_and_the_rest_are_recorded(sender: Sender, change: dict, field: str) -> None:
    bad = {**good(1), **change}
    answer = sender.post(CALLS, [good(0), bad, good(2)])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["refused"]] == [1]
    assert body["refused"][0]["error"].startswith(field), body
    assert sender.stored() == 2


def test_litellm_end_time_out_of_range_is_refused_not_dropped(sender: Sender) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=1)).timestamp()
    base = {
        "custom_llm_provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "startTime": start,
    }
    payloads = [{**base, "id": "ok-1", "endTime": start + 1}, {**base, "id": "bad-1", "endTime": 1e308}]
    answer = sender.post(LITELLM, payloads)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 1 and [r["index"] for r in body["refused"]] == [1]
    assert "endTime" in body["refused"][0]["error"]


def test_a_body_nested_past_the_limit_is_a_400_naming_the_depth(sender: Sender) -> None:
    for depth in (1_001, 5_000):
        deep = b"[" * depth + b"]" * depth
        for path in (CALLS, LITELLM, TRACES):
            answer = sender.post(path, content=deep)
            assert answer.status_code == 400, (path, depth, answer.status_code)
            assert "1,000 levels" in answer.text, answer.text
    fine = {"calls": [{**good(0), "usage": None}]}
    assert sender.post(CALLS, fine).status_code == 200


def test_a_nul_byte_in_an_ndjson_line_is_that_lines_refusal(sender: Sender) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=1)).timestamp()
    line = {"id": "n-1", "custom_llm_provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 1,
            "completion_tokens": 1, "startTime": start}  # fmt: skip
    ndjson = json.dumps(line).encode() + b"\n" + b'{"id": "n-2", "model": "x\x00y"' + b"\n"
    for _ in range(2):  # and its retry
        answer = sender.post(LITELLM, content=ndjson)
        assert answer.status_code == 200, answer.text
    assert sender.stored() == 1
    with sender.engine.connect() as conn:
        samples = conn.execute(select(RejectedIngestion.sample)).scalars().all()
    assert samples and all("\x00" not in (s or "") for s in samples)


def test_a_database_that_is_down_is_a_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    import routes.ingest
    from routes.standalone import app

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: the database went down after start
    headers = {"Authorization": "Bearer sb_x_y", "Content-Type": "application/json"}
    for path in (CALLS, LITELLM):
        answer = client.post(path, content=b"[]", headers=headers)
        assert answer.status_code == 503, (path, answer.status_code, answer.text)
        assert answer.headers.get("retry-after"), answer.headers
        assert "database is unavailable" in answer.json()["error"]
    answer = client.post(TRACES, content=b"{}", headers=headers)
    assert answer.status_code == 503 and answer.headers.get("retry-after")
    routes.ingest._engines.clear()


def test_a_poisoned_request_never_fails_the_others_committed_in_its_group(engine: Engine) -> None:
    """SQLite commits concurrent requests together; one request's bad call is its own refusal only."""
    from core.ingest.calls import parse_calls
    from core.ingest.record import _GroupWriter, _Pending

    costly = {**good(9), "provider": "openai", "model": "o1-pro", "input_tokens": 10**12}  # past the limit of one call
    poisoned = _Pending(CALLS, "a", parse_calls(json.dumps([good(1), costly]).encode(), None))
    clean = _Pending(CALLS, "b", parse_calls(json.dumps([good(2), good(3)]).encode(), None))
    _GroupWriter._write(engine, [poisoned, clean])  # one group, as the group writer forms it
    assert clean.outcome() == (2, 0) and clean.parsed.refused == []
    assert poisoned.outcome() == (1, 0)
    assert [(i, r.reason.split(":")[0]) for i, r in poisoned.parsed.refused] == [(1, "cost_total")]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 3


def test_an_export_date_outside_the_years_a_call_can_have_is_a_400_naming_it() -> None:
    from core.reporting.logs import LogFilterError, filter_from_query

    for name in ("start", "end"):
        for value in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "1999-12-31T00:00:00Z"):
            with pytest.raises(LogFilterError, match=f"^{name}: "):
                filter_from_query({name: value})


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["report", "--since", "1999-12-31"], "--since"),
        (["report", "--until", "9999-12-31"], "--until"),
        (["reprice", "--since", "0001-01-01"], "--since"),
    ],
)
def test_a_report_date_outside_the_days_a_call_can_have_is_refused_naming_the_flag(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    from core.cli.main import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: ") and len(err.strip().splitlines()) == 1
