"""Issue 19, point 8: no call is dropped as a duplicate of a call it is not, on any entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from core.ingest.keys import create_key
from core.storage.tables import UsageRecord


@pytest.fixture
def client(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    import routes.ingest
    from routes.standalone import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SPENDBOARD_BUDGET_WORKER", "0")
    yield TestClient(app, raise_server_exceptions=False)
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def post(client: TestClient, key: str, path: str, body: object):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


CALL = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "input_tokens": 100,
    "output_tokens": 10,
    "timestamp": (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0).isoformat(),
}


def test_the_same_call_without_an_id_from_two_keys_is_two_calls(client: TestClient, engine: Engine) -> None:
    one, two = create_key(engine, "one").key, create_key(engine, "two").key
    assert post(client, one, "/api/v1/calls", [CALL]).json()["accepted"] == 1
    assert post(client, two, "/api/v1/calls", [CALL]).json()["accepted"] == 1  # another sender's own call
    again = post(client, one, "/api/v1/calls", [CALL]).json()  # a retry of the same body
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    twice = post(client, one, "/api/v1/calls", [CALL, CALL]).json()  # the second in one body is a call of its own
    assert (twice["accepted"], twice["duplicates"]) == (1, 1)
    assert stored(engine) == 3


def span(trace: str, span_id: str, tokens: int) -> dict[str, object]:
    start = int((datetime.now(UTC) - timedelta(minutes=2)).timestamp() * 1e9)
    return {
        "traceId": trace,
        "spanId": span_id,
        "name": "chat",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_000_000),
        "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(tokens)}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "1"}},
        ],
    }


def test_spans_without_ids_are_refused_with_a_reason_not_dropped_as_one(client: TestClient, engine: Engine) -> None:
    key = create_key(engine, "otel").key
    spans = [span("", "", 10), span("", "", 20), span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", 30)]
    body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}
    answer = post(client, key, "/v1/traces", body)
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2 and "request_id" in partial["errorMessage"], partial
    assert stored(engine) == 1


def test_a_known_id_with_different_content_is_refused_not_called_a_duplicate(
    client: TestClient, engine: Engine
) -> None:
    key = create_key(engine, "ids").key
    first = {**CALL, "request_id": "req-1"}
    assert post(client, key, "/api/v1/calls", [first]).json()["accepted"] == 1
    same = post(client, key, "/api/v1/calls", [first]).json()
    assert (same["accepted"], same["duplicates"], same["refused"]) == (0, 1, [])
    changed = post(client, key, "/api/v1/calls", [{**first, "input_tokens": 999}]).json()
    assert changed["accepted"] == 0 and changed["duplicates"] == 0
    assert changed["refused"][0]["error"] == "request_id 'req-1' is already recorded with different content"
    pair = [{**CALL, "request_id": "req-2"}, {**CALL, "request_id": "req-2", "output_tokens": 1}]
    both = post(client, key, "/api/v1/calls", pair).json()
    assert both["accepted"] == 1 and [r["index"] for r in both["refused"]] == [1]
    assert stored(engine) == 2
