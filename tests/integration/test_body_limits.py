"""Issue 19, point 14: items per body capped, refusals listed in an answer capped, kept refusals bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select
from starlette.testclient import TestClient

from core.ingest import limits
from core.ingest.keys import create_key
from core.storage.key_tables import RejectedIngestion


@pytest.fixture
def client(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    import routes.ingest
    from routes.standalone import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    yield TestClient(app, raise_server_exceptions=False), create_key(engine, "limits").key
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def post(client: TestClient, key: str, path: str, data: bytes):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return client.post(path, content=data, headers=headers)


def kept_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RejectedIngestion)).scalar_one()


def test_a_body_of_more_than_100000_items_is_a_413(client: tuple[TestClient, str], engine: Engine) -> None:
    http, key = client
    assert limits.MAX_ITEMS == 100_000
    over = json.dumps([0] * 100_001).encode()
    for path in ("/api/v1/calls", "/api/v1/litellm"):
        answer = post(http, key, path, over)
        assert answer.status_code == 413, (path, answer.status_code)
        assert "100,001" in answer.json()["error"] and "100,000" in answer.json()["error"]
    spans = [{"traceId": "00" * 16, "spanId": f"{i:016x}", "name": "s"} for i in range(100_001)]
    otlp = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    assert post(http, key, "/v1/traces", otlp).status_code == 413
    assert kept_rows(engine) == 0


def test_refusals_listed_are_capped_with_the_total_and_kept_grouped(
    client: tuple[TestClient, str], engine: Engine
) -> None:
    http, key = client
    answer = post(http, key, "/api/v1/calls", json.dumps([7] * 100_000).encode())
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["refused"]) == limits.MAX_REFUSALS_LISTED == 1_000
    assert body["refused_total"] == 100_000 and body["accepted"] == 0
    assert len(answer.content) < 100_000  # was one entry per item: ~5 MB here, 309 MB for 5 million
    assert kept_rows(engine) == 1  # one reason, one row, count 100,000
    with engine.connect() as conn:
        assert conn.execute(select(RejectedIngestion.count)).scalar_one() == 100_000


def test_distinct_reasons_of_one_request_are_kept_in_a_bounded_number_of_rows(
    client: tuple[TestClient, str], engine: Engine
) -> None:
    http, key = client
    start = int((datetime.now(UTC) - timedelta(minutes=2)).timestamp() * 1e9)
    spans = [  # each refused with its own span id in the reason (no model)
        {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": f"{i + 1:016x}",
            "name": "chat",
            "startTimeUnixNano": str(start),
            "attributes": [
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1"}},
            ],
        }
        for i in range(2_000)
    ]
    otlp = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    answer = post(http, key, "/v1/traces", otlp)
    assert answer.status_code == 200 and int(answer.json()["partialSuccess"]["rejectedSpans"]) == 2_000
    assert kept_rows(engine) == limits.KEPT_REASONS_PER_REQUEST
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(RejectedIngestion.count))).scalar_one() == 2_000


def test_kept_refusals_are_pruned_by_age_and_count(
    client: tuple[TestClient, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, key = client
    old = datetime.now(UTC) - timedelta(days=limits.KEPT_DAYS + 1)
    with engine.begin() as conn:
        conn.execute(insert(RejectedIngestion), [{"at": old, "route": "x", "reason": "old", "count": 1}] * 5)
    monkeypatch.setattr(limits, "KEPT_ROWS", 3)
    for _ in range(5):
        assert post(http, key, "/api/v1/calls", b"[7]").status_code == 200
    with engine.connect() as conn:
        reasons = conn.execute(select(RejectedIngestion.reason)).scalars().all()
    assert len(reasons) == 3 and "old" not in reasons
