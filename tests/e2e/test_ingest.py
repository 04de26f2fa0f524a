"""Network ingestion (issue 12) with real clients: the routes served by uvicorn on 127.0.0.1.

The OpenTelemetry SDK and its OTLP/HTTP exporter, the OpenAI instrumentation on a real
``openai`` client talking to the local stub, LiteLLM with ``mock_response`` and its
``generic_api`` callback; refusals (auth, bodies, sizes, content types) write nothing;
4 senders with overlapping ids through a SIGKILL and restart store every call once.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
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
from core.ingest.keys import authenticate, create_key, revoke_key
from core.pricing.lookup import calculate_cost
from core.recording.rollups import check_rollups
from core.storage.engine import make_engine
from core.storage.key_tables import ApiKey, RejectedIngestion
from core.storage.tables import UsageRecord

ROOT = Path(__file__).resolve().parents[2]
CALLS = "/api/v1/calls"
TRACES = "/v1/traces"
LITELLM = "/api/v1/litellm"


# --- the server: routes.standalone:app under uvicorn in a thread, for the whole module ---


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from routes.standalone import app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Api:
    def __init__(self, base: str, key: str, engine: Engine) -> None:
        self.base = base
        self.key = key
        self.engine = engine
        self.client = httpx.Client(base_url=base, timeout=30)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def post(self, path: str, body: Any = None, *, content: bytes | None = None, **headers: str) -> httpx.Response:
        if content is None:
            content = json.dumps(body).encode()
        merged = {"Content-Type": "application/json", **self.auth(), **headers}
        return self.client.post(path, content=content, headers={k.replace("_", "-"): v for k, v in merged.items()})

    def rows(self) -> list[UsageRecord]:
        from sqlalchemy.orm import Session

        with Session(self.engine) as session:
            return list(session.scalars(select(UsageRecord).order_by(UsageRecord.id)))

    def count(self, model: type = UsageRecord) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def api(base_url: str, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The server pointed at this test's database (seeded prices) with one API key."""
    import routes.ingest

    monkeypatch.setenv("DATABASE_URL", db_url)
    new = create_key(engine, "test-sender")
    client = Api(base_url, new.key, engine)
    yield client
    client.client.close()
    cached = routes.ingest._engines.pop(db_url, None)
    if cached is not None:
        cached.dispose()


def ago(**delta: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


def a_call(request_id: str | None = "r-1", **fields: Any) -> dict[str, Any]:
    call = {
        "timestamp": ago(hours=1).isoformat(),
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
        **fields,
    }
    if request_id is not None:
        call["request_id"] = request_id
    return call


# --- API keys ---


def test_keys_create_list_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["keys", "create", "--name", "web-app", "--project", "checkout", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert set(made) == {"id", "name", "key"} and made["name"] == "web-app" and made["key"].startswith("sb_")
    assert main(["keys", "create", "--name", "web-app"]) == 2
    assert "exists already" in capsys.readouterr().err
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(ApiKey.__table__)).one()
        assert made["key"] not in [str(v) for v in stored]  # only the hash is kept
        assert made["key"].startswith(stored.prefix) and len(stored.key_hash) == 64
        assert main(["keys", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[0]["project"] == "checkout" and listed[0]["last_used_at"] is None
        found = authenticate(engine, made["key"])
        assert found is not None and found.project == "checkout"
        assert authenticate(engine, made["key"][:-1] + ("A" if made["key"][-1] != "A" else "B")) is None
        assert authenticate(engine, "sb_nothing") is None and authenticate(engine, None) is None
        assert main(["keys", "list"]) == 0
        assert "web-app" in capsys.readouterr().out
        assert main(["keys", "revoke", "web-app"]) == 0
        capsys.readouterr()
        assert authenticate(engine, made["key"]) is None
        assert main(["keys", "revoke", "nobody"]) == 2
        assert "no key named" in capsys.readouterr().err
        assert main(["keys", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[0]["revoked_at"] is not None and listed[0]["last_used_at"] is not None
    finally:
        engine.dispose()


# --- POST /api/v1/calls ---


def test_calls_object_array_and_wrapped(api: Api) -> None:
    one = a_call("one")
    answer = api.post(CALLS, one)
    assert answer.status_code == 200 and answer.json() == {
        "accepted": 1,
        "duplicates": 0,
        "refused": [],
        "refused_total": 0,
    }
    mixed = [a_call("two"), {"provider": "openai"}, 7, one, a_call(None, user="ann")]  # "one" sent again, the same
    answer = api.post(CALLS, mixed)
    assert answer.status_code == 200
    assert answer.json() == {
        "accepted": 2,
        "duplicates": 1,
        "refused": [
            {"index": 1, "error": "timestamp: missing"},
            {"index": 2, "error": "expected a call object, found int"},
        ],
        "refused_total": 2,
    }
    answer = api.post(CALLS, {"calls": [a_call("three", input_tokens=-1), a_call("four", colour="red")]})
    refused = answer.json()["refused"]
    assert [r["index"] for r in refused] == [0, 1]
    assert refused[0]["error"].startswith("input_tokens") and "colour" in refused[1]["error"]
    rows = api.rows()
    (derived,) = [r for r in rows if r.request_id not in ("one", "two")]
    assert len(rows) == 3 and derived.user_id == "ann" and derived.request_id.startswith("api-")
    # a retried body records nothing twice, also for the calls sent without a request_id
    again = api.post(CALLS, mixed)
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 3
    assert api.count() == 3
    with api.engine.connect() as conn:
        kept = conn.execute(select(RejectedIngestion.reason, RejectedIngestion.count, RejectedIngestion.key_name)).all()
    assert ("timestamp: missing", 1, "test-sender") in kept and len(kept) == 6
    cost = calculate_cost(api.engine, "openai", "gpt-4o", 1000, 200)
    assert rows[0].cost_total == cost.cost_total


def test_calls_gzip_and_key_project(api: Api) -> None:
    tagged = create_key(api.engine, "tagged", project="checkout")
    body = gzip.compress(json.dumps([a_call(f"g{i}") for i in range(50)]).encode())
    answer = api.post(CALLS, content=body, Content_Encoding="gzip", Authorization=f"Bearer {tagged.key}")
    assert answer.status_code == 200 and answer.json()["accepted"] == 50
    assert api.count() == 50
    whole = [
        a_call("own-project", project="search"),
        a_call(
            "whole-bill",
            input_tokens=5000,
            output_tokens=900,
            cached_input_tokens=1000,
            cache_write_tokens=2000,
            cache_write_1h_tokens=500,
            reasoning_tokens=400,
            web_search_calls=2,
            service_tier="flex",
            latency_ms=1234,
            status="error",
            user="u7",
        ),
        a_call("bad-cache", cached_input_tokens=900, cache_write_tokens=200),
    ]
    answer = api.post(CALLS, whole, Authorization=f"Bearer {tagged.key}")
    assert answer.json()["accepted"] == 2 and [r["index"] for r in answer.json()["refused"]] == [2]
    rows = {r.request_id: r for r in api.rows()}
    assert rows["g0"].project == "checkout" and rows["own-project"].project == "search"
    w = rows["whole-bill"]
    assert (w.cached_input_tokens, w.cache_write_tokens, w.cache_write_1h_tokens, w.reasoning_tokens) == (
        1000,
        2000,
        500,
        400,
    )
    assert (w.web_search_calls, w.service_tier, w.latency_ms, w.status, w.project) == (
        2,
        "flex",
        1234,
        "error",
        "checkout",
    )
    expected = calculate_cost(
        api.engine,
        "openai",
        "gpt-4o",
        5000,
        900,
        1000,
        cache_write_tokens=2000,
        cache_write_1h_tokens=500,
        reasoning_tokens=400,
        web_search_calls=2,
        service_tier="flex",
    )
    assert w.cost_total == expected.cost_total
    if importlib.util.find_spec("core.pricing.provider_usage") is not None:  # the usage-shapes helper's module
        with_usage = {
            "timestamp": ago(minutes=1).isoformat(),
            "provider": "openai",
            "model": "gpt-4o",
            "request_id": "with-usage",
            "usage": {"prompt_tokens": 300, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 100}},
        }
        assert api.post(CALLS, with_usage).json()["accepted"] == 1
        row = {r.request_id: r for r in api.rows()}["with-usage"]
        assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (300, 100, 20)
    with api.engine.connect() as conn:
        used = conn.execute(select(ApiKey.last_used_at).where(ApiKey.name == "tagged")).scalar_one()
    assert used is not None


# --- refusals: status and message, nothing written ---


def test_refusals_write_nothing(api: Api) -> None:
    revoked = create_key(api.engine, "old")
    revoke_key(api.engine, "old")
    body = json.dumps(a_call("x")).encode()
    cases: list[tuple[str, dict[str, str], bytes, int, str]] = [
        (CALLS, {"Authorization": ""}, body, 401, "missing API key"),
        (CALLS, {"Authorization": f"Basic {api.key}"}, body, 401, "missing API key"),
        (CALLS, {"Authorization": "Bearer sb_abcdefghij_" + "x" * 43}, body, 401, "unknown or revoked"),
        (CALLS, {"Authorization": f"Bearer {revoked.key}"}, body, 401, "unknown or revoked"),
        (LITELLM, {"Authorization": "Bearer nope"}, body, 401, "unknown or revoked"),
        (CALLS, {}, b"this is not json", 400, "not JSON"),
        (CALLS, {}, b'{"calls": 5}', 400, '"calls" must be an array'),
        (CALLS, {}, b'[{"input_tokens": NaN}]', 400, "not JSON"),
        (CALLS, {}, b"\xff\xfe{}", 400, "not valid UTF-8"),
        (CALLS, {"Content-Encoding": "gzip"}, b"not gzip at all", 400, "not valid gzip"),
        (CALLS, {"Content-Encoding": "gzip"}, gzip.compress(body)[:-12], 400, "truncated"),
        (CALLS, {"Content-Encoding": "br"}, body, 415, "Content-Encoding"),
        (CALLS, {}, b"[" + b" " * (10 * 1024 * 1024) + b"]", 413, "over the limit"),
        (CALLS, {"Content-Encoding": "gzip"}, gzip.compress(b" " * (11 * 1024 * 1024)), 413, "after decompression"),
        (LITELLM, {}, b"", 400, "empty"),
        (LITELLM, {}, b"<html>", 400, "not JSON"),
        (TRACES, {"Content-Type": "text/plain"}, b"x", 415, "is not OTLP"),
        (TRACES, {"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff", 400, "not an OTLP"),
        (TRACES, {"Content-Type": "application/json"}, b"[1, 2]", 400, "ExportTraceServiceRequest"),
        (TRACES, {"Content-Type": "application/json"}, b'{"resourceSpans": 3}', 400, "not an OTLP"),
    ]
    for path, headers, content, status, message in cases:
        answer = api.post(path, content=content, **{k.replace("-", "_"): v for k, v in headers.items()})
        assert answer.status_code == status, (path, headers, content[:40], answer.text)
        if path == TRACES:
            from google.rpc import status_pb2

            if (headers.get("Content-Type") or "") == "application/x-protobuf":
                text = status_pb2.Status.FromString(answer.content).message
            else:  # JSON, and any client not speaking OTLP protobuf (issue 22, point 12)
                text = answer.json()["message"]
        else:
            text = answer.json()["error"]
        assert message in text, (path, text)
        if status == 401:
            assert answer.headers["www-authenticate"] == "Bearer"
    assert api.count() == 0 and api.count(RejectedIngestion) == 0


# --- POST /v1/traces with the OpenTelemetry SDK ---


def _tracer(api: Api, service: str = "checkout"):  # type: ignore[no-untyped-def]
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service, "enduser.id": "resource-user"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{api.base}{TRACES}", headers=api.auth(), compression=Compression.Gzip, timeout=10
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _genai_spans(provider) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.trace import Status, StatusCode

    tracer = provider.get_tracer("test.genai")
    with tracer.start_as_current_span("invoke_agent planner") as agent:
        agent.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 5000,
                "gen_ai.usage.output_tokens": 900,
            }
        )
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o",
                    "gen_ai.response.id": "chatcmpl-otel-1",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 200,
                    "gen_ai.usage.cache_creation.input_tokens": 300,
                    "gen_ai.usage.reasoning.output_tokens": 120,
                    "user.id": "alice",
                }
            )
            chat.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("chat old names") as old:
            old.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.prompt_tokens": 100,
                    "gen_ai.usage.completion_tokens": 50,
                }
            )
        with tracer.start_as_current_span("ChatAnthropic") as oi:
            oi.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.provider": "anthropic",
                    "llm.model_name": "claude-sonnet-4-5",
                    "llm.token_count.prompt": 3000,
                    "llm.token_count.completion": 100,
                    "llm.token_count.prompt_details.cache_read": 2000,
                }
            )
        with tracer.start_as_current_span("RunnableSequence") as chain:
            chain.set_attributes(
                {"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 3000, "llm.token_count.completion": 100}
            )
        with tracer.start_as_current_span("GET /weather") as http:
            http.set_attribute("http.request.method", "GET")
        with tracer.start_as_current_span("chat broken") as bad:
            bad.set_attributes(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": -5,
                    "gen_ai.usage.output_tokens": 1,
                    "gen_ai.input.messages": "secret prompt",
                }
            )


def test_otel_sdk_exporter_protobuf_and_json(api: Api) -> None:
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    provider, memory = _tracer(api)
    _genai_spans(provider)
    provider.force_flush()
    provider.shutdown()
    spans = {s.name: s for s in memory.get_finished_spans()}
    rows = {r.request_id: r for r in api.rows()}
    old = spans["chat old names"].context
    oi = spans["ChatAnthropic"].context
    old_id = f"{old.trace_id:032x}:{old.span_id:016x}"
    oi_id = f"{oi.trace_id:032x}:{oi.span_id:016x}"
    assert set(rows) == {"chatcmpl-otel-1", old_id, oi_id}  # agent, chain, HTTP and broken spans: not calls
    chat = rows["chatcmpl-otel-1"]
    assert (chat.provider, chat.model, chat.input_tokens, chat.output_tokens, chat.cached_input_tokens) == (
        "openai",
        "gpt-4o",
        1200,
        300,
        200,
    )
    assert chat.user_id == "alice" and rows[old_id].user_id == "resource-user"
    started = datetime.fromtimestamp(spans["chat gpt-4o"].start_time / 1e9, UTC)
    assert abs((chat.timestamp - started).total_seconds()) < 0.001
    assert (rows[old_id].model, rows[old_id].input_tokens, rows[old_id].output_tokens) == ("gpt-4o-mini", 100, 50)
    assert (rows[oi_id].provider, rows[oi_id].input_tokens, rows[oi_id].cached_input_tokens) == (
        "anthropic",
        3000,
        2000,
    )
    assert (chat.cache_write_tokens, chat.reasoning_tokens, chat.status) == (300, 120, "error")
    assert chat.latency_ms == (spans["chat gpt-4o"].end_time - spans["chat gpt-4o"].start_time) // 1_000_000
    assert {r.project for r in rows.values()} == {"checkout"}  # service.name: the key names no project
    expected = calculate_cost(
        api.engine, "openai", "gpt-4o", 1200, 300, 200, cache_write_tokens=300, reasoning_tokens=120
    )
    assert chat.cost_total == expected.cost_total
    with api.engine.connect() as conn:
        reasons = conn.execute(select(RejectedIngestion.reason, RejectedIngestion.route)).all()
    assert len(reasons) == 1 and "input_tokens" in reasons[0][0] and reasons[0][1] == TRACES
    with api.engine.connect() as conn:
        kept = conn.execute(select(RejectedIngestion.sample)).scalar_one()
    assert "secret prompt" not in kept and '"gen_ai.usage.input_tokens": -5' in kept

    # the same spans again, as the SDK encodes them: partial_success names the refused span; nothing twice
    request = encode_spans(list(memory.get_finished_spans()))
    answer = api.post(TRACES, content=request.SerializeToString(), Content_Type="application/x-protobuf")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "chat broken" in response.partial_success.error_message
    # OTLP/JSON: ids in hex, as the specification writes them
    as_json = json_format.MessageToDict(request)
    for resource_spans in as_json["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = __import__("base64").b64decode(span[name]).hex()
    answer = api.post(TRACES, as_json)
    assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert api.count() == 3


def test_otlp_json_by_hand(api: Api) -> None:
    """OTLP/JSON as the specification's example writes it: hex ids, int64 as strings, enums as numbers."""
    start = int(ago(minutes=5).timestamp() * 1e9)
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "chat gpt-4o-mini",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 1_500_000_000),
                                "attributes": [
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1500"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 40}},
                                    {"key": "enduser.id", "value": {"stringValue": "bob"}},
                                ],
                                "status": {"code": 2},
                                "futureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    answer = api.post(TRACES, content=gzip.compress(json.dumps(body).encode()), Content_Encoding="gzip")
    assert answer.status_code == 200 and answer.json() == {}
    (row,) = api.rows()
    assert row.request_id == f"{trace_id}:{span_id}" and row.user_id == "bob"
    assert (row.model, row.input_tokens, row.output_tokens) == ("gpt-4o-mini", 1500, 40)
    assert row.timestamp == datetime.fromtimestamp(start / 1e9, UTC)
    assert (row.project, row.status, row.latency_ms) == ("billing", "error", 1500)
    body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"] = "unknown_service:python"
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "eee19b7ec3c1b176"
    assert api.post(TRACES, body).status_code == 200
    assert api.rows()[-1].project is None  # the SDKs' default service name is no project
    # a key with a project wins over service.name; cache counts reported apart from input_tokens are added
    tagged = create_key(api.engine, "tagged-otel", project="platform")
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["spanId"] = "eee19b7ec3c1b175"
    span["attributes"] = [
        {"key": "gen_ai.system", "value": {"stringValue": "anthropic"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "50"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
        {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "4000"}},
        {"key": "gen_ai.usage.cache_creation.input_tokens", "value": {"intValue": "1000"}},
    ]
    answer = api.post(TRACES, body, Authorization=f"Bearer {tagged.key}")
    assert answer.status_code == 200 and answer.json() == {}
    added = api.rows()[-1]
    assert (added.project, added.input_tokens, added.cached_input_tokens, added.cache_write_tokens) == (
        "platform",
        5050,
        4000,
        1000,
    )


def test_openai_instrumentation_spans_land_priced(api: Api) -> None:
    """opentelemetry-instrumentation-openai-v2 on a real openai client against the local stub."""
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from stub_openai import StubOpenAI

    provider, _memory = _tracer(api, service="assistant")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with StubOpenAI(response_id="chatcmpl-instrumented", prompt_tokens=1234, completion_tokens=567) as stub:
            client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "2+2?"}])
        provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    (row,) = api.rows()
    assert (row.request_id, row.provider, row.model) == ("chatcmpl-instrumented", "openai", "gpt-4o-mini")
    assert (row.input_tokens, row.output_tokens, row.project) == (1234, 567, "assistant")
    assert row.latency_ms is not None and row.status == "ok"
    assert row.cost_total == calculate_cost(api.engine, "openai", "gpt-4o-mini", 1234, 567).cost_total
    assert row.matched_by == "exact"


# --- POST /api/v1/litellm ---


def test_litellm_generic_api_callback(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM itself: mocked completions, its generic_api callback configured as callback_settings."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.litellm_core_utils.logging_callback_manager import _generic_api_logger_cache

    monkeypatch.setattr(
        litellm,
        "callback_settings",
        {"spendboard": {"callback_type": "generic_api", "endpoint": f"{api.base}{LITELLM}", "headers": api.auth()}},
    )
    sent: list[dict] = []

    async def run() -> list[str]:
        litellm.logging_callback_manager._reset_all_callbacks()  # no logger of an earlier test (another loop)
        litellm.logging_callback_manager.add_litellm_callback("spendboard")
        try:
            ids = []
            for i in range(3):
                response = await litellm.acompletion(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}], mock_response="hi"
                )
                ids.append(response.id)
            logger = _generic_api_logger_cache["spendboard"]
            for _ in range(250):  # success callbacks run as tasks after the call returns
                if len(logger.log_queue) >= 3:
                    break
                await asyncio.sleep(0.02)
            sent.extend(dict(p) for p in logger.log_queue)
            await logger.async_send_batch()
            await logger.async_send_batch()  # an empty flush sends nothing
            return ids
        finally:
            litellm.logging_callback_manager._reset_all_callbacks()
            _generic_api_logger_cache.pop("spendboard", None)

    asyncio.run(run())
    rows = api.rows()
    assert len(sent) == 3 and len(rows) == 3
    assert sorted(r.request_id for r in rows) == sorted(p["litellm_call_id"] for p in sent)
    for row in rows:
        assert (row.provider, row.model, row.input_tokens, row.output_tokens) == ("openai", "gpt-4o-mini", 10, 20)
    # the same batch again (a retry), as NDJSON: nothing twice
    again = api.post(LITELLM, content=b"\n".join(json.dumps(p, default=str).encode() for p in sent))
    assert again.status_code == 200 and again.json() == {
        "accepted": 0,
        "duplicates": 3,
        "refused": [],
        "refused_total": 0,
    }


def _payload(call_id: str, **overrides: Any) -> dict[str, Any]:
    started = ago(minutes=3).timestamp()
    payload: dict[str, Any] = {
        "id": f"chatcmpl-{call_id}",
        "litellm_call_id": call_id,
        "status": "success",
        "custom_llm_provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "startTime": started + 0.25,
        "endTime": started + 1.5,
        "prompt_tokens": 9999,
        "completion_tokens": 9999,
        "end_user": None,
        "metadata": {
            "user_api_key_user_id": "key-user",
            "usage_object": {
                "prompt_tokens": 5000,
                "completion_tokens": 700,
                "prompt_tokens_details": {"cached_tokens": 3000},
                "completion_tokens_details": {"reasoning_tokens": 300},
                "cache_creation_input_tokens": 1000,
            },
        },
    }
    payload.update(overrides)
    return payload


def test_litellm_payload_shapes_and_kept_refusals(api: Api) -> None:
    first = _payload("a")
    answer = api.post(
        LITELLM,
        [
            first,
            _payload("b", end_user="customer-9"),
            "junk",
            _payload("c", startTime=None, messages=[{"role": "user", "content": "secret prompt"}]),
        ],
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["accepted"] == 2 and [r["index"] for r in result["refused"]] == [2, 3]
    assert "startTime" in result["refused"][1]["error"]
    rows = {r.request_id: r for r in api.rows()}
    a = rows["a"]
    assert (a.provider, a.model, a.input_tokens, a.output_tokens, a.cached_input_tokens) == (
        "anthropic",
        "claude-sonnet-4-5",
        5000,
        700,
        3000,
    )
    assert a.user_id == "key-user" and rows["b"].user_id == "customer-9"
    assert (a.cache_write_tokens, a.reasoning_tokens, a.latency_ms, a.status) == (1000, 300, 1250, "ok")
    expected = calculate_cost(
        api.engine, "anthropic", "claude-sonnet-4-5", 5000, 700, 3000, cache_write_tokens=1000, reasoning_tokens=300
    )
    assert a.cost_total == expected.cost_total
    assert a.timestamp == datetime.fromtimestamp(first["startTime"], UTC)
    # one object, and NDJSON with a broken line: 200 with per-item results, refusals kept
    single = api.post(LITELLM, _payload("d", litellm_call_id=None, id="fallback-id"))
    assert single.json() == {"accepted": 1, "duplicates": 0, "refused": [], "refused_total": 0}
    assert "fallback-id" in {r.request_id for r in api.rows()}
    failed = _payload("f", status="failure", metadata={"usage_object": None}, prompt_tokens=0, completion_tokens=0)
    hour = {"cache_creation_token_details": {"ephemeral_1h_input_tokens": 600}, "cached_tokens": 0}
    one_hour = _payload("h")
    one_hour["metadata"]["usage_object"]["prompt_tokens_details"] = hour
    assert api.post(LITELLM, [failed, one_hour]).json()["accepted"] == 2
    rows = {r.request_id: r for r in api.rows()}
    assert (rows["f"].status, rows["f"].input_tokens) == ("error", 0)
    assert (rows["h"].cache_write_tokens, rows["h"].cache_write_1h_tokens) == (400, 600)
    ndjson = json.dumps(_payload("e")).encode() + b"\n{broken\n" + json.dumps(first).encode() + b"\n"
    result = api.post(LITELLM, content=ndjson, Content_Type="application/x-ndjson").json()
    assert (result["accepted"], result["duplicates"], [r["index"] for r in result["refused"]]) == (1, 1, [1])
    assert api.count() == 6
    from core.ingest.rejections import rejection_summary

    summary = rejection_summary(api.engine)
    assert sum(s.count for s in summary) == 3 and all(s.route == LITELLM for s in summary)
    samples = " ".join(s.sample or "" for s in summary)
    assert "secret prompt" not in samples and '"startTime":null' in samples  # kept: the fields read, not prompts


# --- load and faults: 4 senders, overlapping ids, SIGKILL and restart of `python -m core serve` ---


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


@pytest.mark.slow
def test_senders_through_a_kill_store_each_call_once(db_url: str, engine: Engine, tmp_path: Path) -> None:
    key = create_key(engine, "load").key
    port = free_port()
    log = tmp_path / "serve.log"
    server = {"process": _serve(db_url, port, log)}
    senders, per_sender, batch = 4, 2_000, 100
    moment = ago(hours=2)
    acknowledged: list[set[str]] = [set() for _ in range(senders)]
    accepted_total = [0] * senders
    batches_done = [0]
    failures = [0]
    lock = threading.Lock()

    def send(s: int) -> None:
        ids = [f"load-{s * 1000 + i}" for i in range(per_sender)]  # each overlaps its neighbour's half
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for start in range(0, per_sender, batch):
                chunk = ids[start : start + batch]
                body = [a_call(rid, timestamp=(moment + timedelta(seconds=int(rid[5:]))).isoformat()) for rid in chunk]
                deadline = time.monotonic() + 60
                while True:
                    try:
                        answer = client.post(CALLS, json=body, headers={"Authorization": f"Bearer {key}"})
                        if answer.status_code == 200:
                            result = answer.json()
                            assert result["refused"] == [] and result["accepted"] + result["duplicates"] == len(chunk)
                            accepted_total[s] += result["accepted"]
                            acknowledged[s].update(chunk)
                            with lock:
                                batches_done[0] += 1
                            break
                    except httpx.HTTPError:
                        pass
                    with lock:
                        failures[0] += 1
                    assert time.monotonic() < deadline, "a batch was never acknowledged"
                    time.sleep(0.05)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    total_batches = senders * per_sender // batch
    while batches_done[0] < total_batches // 3:
        time.sleep(0.005)
    server["process"].send_signal(signal.SIGKILL)  # mid-flight: requests in progress are cut
    server["process"].wait(timeout=10)
    killed_at = batches_done[0]
    server["process"] = _serve(db_url, port, log)
    try:
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    finally:
        server["process"].send_signal(signal.SIGTERM)
        server["process"].wait(timeout=15)
    expected = set().union(*acknowledged)
    assert len(expected) == 5_000 and killed_at < total_batches and failures[0] > 0  # the kill cut some requests
    with engine.connect() as conn:
        stored = conn.execute(select(UsageRecord.request_id)).scalars().all()
    assert len(stored) == len(set(stored)) == 5_000 and set(stored) == expected
    assert check_rollups(engine).matches  # roll-ups were written in the same transactions as the calls
    assert (
        sum(accepted_total) <= 5_000
    )  # a batch cut by the kill may have committed unanswered: its retry is a duplicate


@pytest.mark.slow
def test_dashboard_process_serves_the_routes(tmp_path: Path) -> None:
    """`make run` (streamlit run server.py): the ingestion routes on the dashboard's port."""
    from streamlit_server import streamlit_server

    url = f"sqlite:///{tmp_path / 'dash.db'}"
    engine = make_engine(url)
    try:
        from core.pricing.seeding import initialize_default_pricing
        from core.storage.migrate import create_tables

        create_tables(engine)
        initialize_default_pricing(engine)
        key = create_key(engine, "dashboard").key
        env = {"DATABASE_URL": url, "SPENDBOARD_ADMIN_PASSWORD": "x" * 16}
        with streamlit_server(ROOT / "server.py", env, tmp_path / "streamlit.log") as base:
            api = Api(base, key, engine)
            answer = api.post(CALLS, [a_call("dash-1"), a_call("dash-2")])
            assert answer.status_code == 200 and answer.json()["accepted"] == 2
            assert api.post(CALLS, a_call("dash-3"), Authorization="Bearer wrong").status_code == 401
            api.client.close()
        assert [r.request_id for r in api.rows()] == ["dash-1", "dash-2"]
    finally:
        engine.dispose()


def test_group_commit_counts_each_id_once(engine: Engine) -> None:
    """Concurrent requests committed together: every id accepted by exactly one request, the rest duplicates."""
    from core.ingest.calls import parse_calls
    from core.ingest.record import record_parsed

    senders = 8
    ids = [[f"grp-{(s * 150 + i) % 1000}" for i in range(300)] + [f"grp-{s}"] for s in range(senders)]
    for s in range(1, senders, 2):
        ids[s].reverse()  # the same ids in opposite orders (PostgreSQL: concurrent, must not deadlock)
    at = ago(hours=1).isoformat()  # one instant: the same id is the same call in every body
    bodies = [json.dumps([a_call(rid, timestamp=at) for rid in ids[s]]).encode() for s in range(senders)]
    barrier = threading.Barrier(senders)
    results: list[tuple[int, int]] = [(0, 0)] * senders

    def send(s: int) -> None:
        parsed = parse_calls(bodies[s], None)
        barrier.wait()
        result = record_parsed(engine, CALLS, "group", parsed)
        results[s] = (result.accepted, result.duplicates)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    distinct = {call["request_id"] for body in bodies for call in json.loads(body)}
    assert all(a + d == 301 for a, d in results)
    assert sum(a for a, _ in results) == len(distinct)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == len(distinct)
