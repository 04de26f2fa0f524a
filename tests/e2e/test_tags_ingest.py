"""Tags from every entry point, with the real senders: the OpenTelemetry SDK's OTLP exporter,
LiteLLM's generic_api callback, the JSON API, ``import`` (JSON Lines and CSV) and ``track()``.

Where a payload has two sources (LiteLLM ``request_tags`` and ``metadata.tags``, OTLP
``spendboard.tags`` and ``langfuse.trace.tags``) the call carries their union; a bad tag
refuses its item, naming the field and the value, and nothing of it is written.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select
from streamlit_server import free_port

from core.cli.main import main
from core.ingest.keys import create_key
from core.recording.rollups import check_rollups, stored_tags
from core.reporting import aggregates as reports
from core.storage.tables import UsageRecord
from core.storage.tag_tables import CallTag

TRACES = "/v1/traces"
LITELLM = "/api/v1/litellm"
CALLS = "/api/v1/calls"
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from routes.standalone import app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-tags", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def auth(base_url: str, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import routes.ingest

    monkeypatch.setenv("DATABASE_URL", db_url)
    yield {"Authorization": f"Bearer {create_key(engine, 'tag-sender').key}"}
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def _tags_by_request(engine: Engine) -> dict[str, tuple[str, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(UsageRecord.id, UsageRecord.request_id, UsageRecord.tags)).all()
        indexed = {
            usage_id: tag for usage_id, tag in conn.execute(select(CallTag.usage_id, CallTag.tag).order_by(CallTag.tag))
        }
    assert set(indexed) <= {r.id for r in rows}
    return {r.request_id: stored_tags(r.tags) for r in rows}


def test_otel_sdk_spans_carry_the_union_of_both_tag_attributes(
    base_url: str, auth: dict[str, str], engine: Engine
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "summarizer"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base_url}{TRACES}", headers=auth)))
    tracer = provider.get_tracer("test.tags")
    usage = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100}
    usage["gen_ai.usage.output_tokens"] = 10
    spans = {
        "chatcmpl-both": {
            "spendboard.tags": ["feature:summarize", "env:prod"],
            "langfuse.trace.tags": ["env:prod", "nightly"],
        },
        "chatcmpl-langfuse-json": {"langfuse.trace.tags": json.dumps(["feature:chat", "beta"])},
        "chatcmpl-none": {},
        "chatcmpl-bad": {"spendboard.tags": ["ok", "x" * 101]},
    }
    for response_id, tags in spans.items():
        with tracer.start_as_current_span(f"chat {response_id}") as span:
            span.set_attributes({**usage, "gen_ai.response.id": response_id, **tags})
    provider.shutdown()
    found = _tags_by_request(engine)
    assert found == {
        "chatcmpl-both": ("feature:summarize", "env:prod", "nightly"),
        "chatcmpl-langfuse-json": ("feature:chat", "beta"),
        "chatcmpl-none": (),
    }
    with engine.connect() as conn:
        from core.storage.key_tables import RejectedIngestion

        reasons = [r for (r,) in conn.execute(select(RejectedIngestion.reason))]
    assert any("spendboard.tags[1]: at most 100 characters" in r for r in reasons), reasons
    assert check_rollups(engine).matches
    by_tag = {r.key: r.totals.calls for r in reports.breakdown(engine, *EVERYTHING, "tag")}
    assert by_tag == {"feature:summarize": 1, "env:prod": 1, "nightly": 1, "feature:chat": 1, "beta": 1}


def test_litellm_request_tags_and_metadata_tags(
    base_url: str, auth: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM itself: a mocked completion with ``metadata={"tags": [...]}``, sent by its generic_api callback."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.litellm_core_utils.logging_callback_manager import _generic_api_logger_cache

    monkeypatch.setattr(
        litellm,
        "callback_settings",
        {"spendboard": {"callback_type": "generic_api", "endpoint": f"{base_url}{LITELLM}", "headers": auth}},
    )
    sent: list[dict] = []

    async def run() -> None:
        litellm.logging_callback_manager._reset_all_callbacks()
        litellm.logging_callback_manager.add_litellm_callback("spendboard")
        try:
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="hi",
                metadata={"tags": ["feature:summarize", "env:prod"]},
            )
            logger = _generic_api_logger_cache["spendboard"]
            for _ in range(250):
                if logger.log_queue:
                    break
                await asyncio.sleep(0.02)
            sent.extend(dict(p) for p in logger.log_queue)
            await logger.async_send_batch()
        finally:
            litellm.logging_callback_manager._reset_all_callbacks()
            _generic_api_logger_cache.pop("spendboard", None)

    asyncio.run(run())
    assert len(sent) == 1 and sent[0]["request_tags"] == ["feature:summarize", "env:prod"]
    assert list(_tags_by_request(engine).values()) == [("feature:summarize", "env:prod")]
    # a payload with both sources: their union; a tag that is not a string refuses that item only
    base = {k: v for k, v in sent[0].items() if k in ("custom_llm_provider", "model", "startTime", "endTime")}
    base |= {"prompt_tokens": 10, "completion_tokens": 5}
    both = {**base, "litellm_call_id": "both", "request_tags": ["a", "b"], "metadata": {"tags": ["b", "c"]}}
    bad = {**base, "litellm_call_id": "bad", "request_tags": ["a", 7]}
    answer = httpx.post(f"{base_url}{LITELLM}", json=[both, bad], headers=auth, timeout=30).json()
    assert answer["accepted"] == 1
    assert answer["refused"] == [{"index": 1, "error": "request_tags[1]: not a string: 7"}]
    assert _tags_by_request(engine)["both"] == ("a", "b", "c")


def test_json_api_tags(base_url: str, auth: dict[str, str], engine: Engine) -> None:
    moment = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    call = {"timestamp": moment, "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}
    body = [
        {**call, "request_id": "ok", "tags": ["feature:summarize", "feature:summarize", "Env:Prod"]},
        {**call, "request_id": "too-many", "tags": [f"t{i}" for i in range(21)]},
        {**call, "request_id": "empty", "tags": ["a", " "]},
    ]
    answer = httpx.post(f"{base_url}{CALLS}", json=body, headers=auth, timeout=30).json()
    assert answer["accepted"] == 1
    assert answer["refused"] == [
        {"index": 1, "error": "tags: at most 20 tags, got 21"},
        {"index": 2, "error": "tags[1]: empty tag: ' '"},
    ]
    assert _tags_by_request(engine) == {"ok": ("feature:summarize", "Env:Prod")}


def test_import_json_lines_and_csv_tags(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    lines = [
        {
            "timestamp": "2026-11-02T10:00:00Z",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 5,
            "output_tokens": 1,
            "request_id": "j1",
            "tags": ["feature:summarize", "nightly"],
        },
        {
            "timestamp": "2026-11-02T10:00:00Z",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 5,
            "output_tokens": 1,
            "request_id": "j2",
            "tags": "not;a;list;but;taken",
        },
        {
            "timestamp": "2026-11-02T10:00:00Z",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 5,
            "output_tokens": 1,
            "request_id": "j3",
            "tags": {"a": 1},
        },
    ]
    jsonl = tmp_path / "calls.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    csv_file = tmp_path / "calls.csv"
    csv_file.write_text(
        "timestamp,provider,model,input_tokens,output_tokens,request_id,tags\n"
        "2026-11-02T11:00:00Z,openai,gpt-4o,5,1,c1,feature:chat; env:prod\n"
        "2026-11-02T11:00:00Z,openai,gpt-4o,5,1,c2,\n"
        f"2026-11-02T11:00:00Z,openai,gpt-4o,5,1,c3,{'y' * 101}\n"
    )
    assert main(["import", str(jsonl)]) == 1  # a row refused: exit 1 (issue 22, point 16)
    out = capsys.readouterr()
    assert "line 3: tags: not a list of strings: {'a': 1}" in out.out + out.err
    assert main(["import", str(csv_file)]) == 1
    out = capsys.readouterr()
    assert "line 4: tags[0]: at most 100 characters, got 101" in out.out + out.err
    assert _tags_by_request(engine) == {
        "j1": ("feature:summarize", "nightly"),
        "j2": ("not", "a", "list", "but", "taken"),
        "c1": ("feature:chat", "env:prod"),
        "c2": (),
    }
    # the same file again: every good line a duplicate, none "different content" (line 4 refused again: exit 1)
    assert main(["import", str(csv_file)]) == 1
    out = capsys.readouterr()
    assert "different content" not in out.out + out.err
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == 4


def test_track_tags_every_call(engine: Engine) -> None:
    from core.tracking import TrackingError, track

    class Completions:
        def create(self, **kwargs: Any) -> dict:
            return {
                "id": f"chatcmpl-{kwargs['n']}",
                "model": "gpt-4o",
                "usage": {"prompt_tokens": 9, "completion_tokens": 3},
            }

    class Chat:
        completions = Completions()

    class Client:
        chat = Chat()

    client = track(Client(), engine, "openai", tags=["feature:summarize", "env:prod"])
    client.chat.completions.create(model="gpt-4o", n=1)
    assert _tags_by_request(engine) == {"chatcmpl-1": ("feature:summarize", "env:prod")}
    with pytest.raises(TrackingError, match=r"tags\[0\]: not a string: 5"):
        track(Client(), engine, "openai", tags=[5])
