"""OTLP/HTTP traces (protobuf or JSON) to calls, by the GenAI semantic conventions and OpenInference.

Spans carrying token usage are calls; other spans are ignored, and so are agent and
workflow spans (``gen_ai.operation.name`` ``invoke_agent``/``create_agent``/``workflow``,
OpenInference kind ``AGENT``/``CHAIN``), whose usage only sums their children's.

Token meaning: the conventions say ``gen_ai.usage.cache_read.input_tokens`` and
``gen_ai.usage.cache_creation.input_tokens`` SHOULD be included in
``gen_ai.usage.input_tokens``, which is Spendboard's meaning of ``input_tokens`` (all
input tokens). A sender that reports them apart (Anthropic's own shape), seen as cache
counts larger than ``input_tokens``, gets them added.

Tags: the union of the string arrays ``spendboard.tags`` and ``langfuse.trace.tags`` (some
Langfuse clients send the latter as a JSON-encoded string; it is decoded first).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from core.ingest.calls import PayloadError, load_json
from core.ingest.limits import too_many_items
from core.ingest.record import Parsed, to_call
from core.ingest.rejections import Refusal
from core.recording.calls import CallError
from core.recording.tags import TagError, union_tags

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# The first attribute present wins: current convention, older names, then OpenInference.
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING = ("gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning")
USER = ("user.id", "enduser.id")
SERVICE_TIER = ("openai.response.service_tier", "gen_ai.openai.response.service_tier")
USAGE_KEYS = frozenset(INPUT + OUTPUT)
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "workflow", "invoke_workflow"})
AGENT_KINDS = frozenset({"AGENT", "CHAIN"})
# semantic-convention provider names that differ from the names prices are kept under
PROVIDER_NAMES = {"gcp.gemini": "gemini", "gcp.gen_ai": "gemini", "x_ai": "xai", "azure.ai.openai": "azure"}
TIERS = {"flex": "flex", "priority": "priority", "batch": "batch"}
TAGS = ("spendboard.tags", "langfuse.trace.tags")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def is_agent_span(attrs: dict[str, Any]) -> bool:
    operation = attrs.get("gen_ai.operation.name")
    kind = attrs.get("openinference.span.kind")
    return (isinstance(operation, str) and operation in AGENT_OPERATIONS) or (
        isinstance(kind, str) and kind.upper() in AGENT_KINDS
    )


def _int_or_zero(value: Any) -> Any:
    return 0 if value is None else value


def span_mapping(span: Span, attrs: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """The call a GenAI span describes, as import-style fields (checked later as any call is)."""
    provider = _first(attrs, PROVIDER)
    if isinstance(provider, str):
        provider = PROVIDER_NAMES.get(provider.strip().lower(), provider)
    input_tokens = _first(attrs, INPUT)
    cached = _first(attrs, CACHE_READ)
    written = _first(attrs, CACHE_WRITE)
    if isinstance(input_tokens, int) and isinstance(cached or 0, int) and isinstance(written or 0, int):
        if (cached or 0) + (written or 0) > input_tokens:  # reported apart, not included
            input_tokens += (cached or 0) + (written or 0)
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    response_id = attrs.get("gen_ai.response.id")
    if not (isinstance(response_id, str) and response_id.strip()) and not (span.trace_id and span.span_id):
        raise CallError("request_id: the span has no gen_ai.response.id and no trace and span id to tell it apart")
    tier = _first(attrs, SERVICE_TIER)
    mapping: dict[str, Any] = {
        "provider": provider,
        "model": _first(attrs, MODEL),
        "input_tokens": _int_or_zero(input_tokens),
        "output_tokens": _int_or_zero(_first(attrs, OUTPUT)),
        "cached_input_tokens": _int_or_zero(cached),
        "cache_write_tokens": _int_or_zero(written),
        "reasoning_tokens": _int_or_zero(_first(attrs, REASONING)),
        "user": _first(attrs, USER) or _first(resource, USER),
        "request_id": response_id
        if isinstance(response_id, str) and response_id.strip()
        else f"{span.trace_id.hex()}:{span.span_id.hex()}",
        "timestamp": datetime.fromtimestamp(start / 1e9, UTC) if start else None,
        "latency_ms": (end - start) // 1_000_000 if start and end >= start else None,
        "status": "error" if span.status.code == Status.STATUS_CODE_ERROR else "ok",
        "service_tier": TIERS.get(tier.lower(), "standard") if isinstance(tier, str) else "standard",
        "tags": _tags(attrs),
    }
    if mapping["provider"] is None:
        raise CallError("provider: missing (gen_ai.provider.name or gen_ai.system)")
    if mapping["model"] is None:
        raise CallError("model: missing (gen_ai.response.model or gen_ai.request.model)")
    if mapping["timestamp"] is None:
        raise CallError("timestamp: the span has no start time")
    return mapping


def _tags(attrs: dict[str, Any]) -> tuple[str, ...]:
    sources = []
    for name in TAGS:
        value = attrs.get(name)
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # not JSON after all: read as ;-separated tags, as a CSV cell is
        sources.append((name, value))
    try:
        return union_tags(*sources)
    except TagError as exc:
        raise CallError(str(exc)) from None


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping reads bytes as base64."""
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value and len(value) % 2 == 0:
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                pass  # not hex: leave it for the parser to judge


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # anything else is left for the parser to refuse


def _fix_json_ids(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise PayloadError(f"expected an ExportTraceServiceRequest object, found {type(payload).__name__}")
    for resource_spans in _list(payload.get("resourceSpans") or payload.get("resource_spans")):
        if not isinstance(resource_spans, dict):
            continue
        for scope_spans in _list(resource_spans.get("scopeSpans") or resource_spans.get("scope_spans")):
            if not isinstance(scope_spans, dict):
                continue
            for span in _list(scope_spans.get("spans")):
                if not isinstance(span, dict):
                    continue
                _hex_ids_to_base64(span)
                for link in _list(span.get("links")):
                    if isinstance(link, dict):
                        _hex_ids_to_base64(link)


def decode_request(body: bytes, json_body: bool) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if json_body:
        payload = load_json(body)
        _fix_json_ids(payload)
        try:
            json_format.ParseDict(payload, request, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            raise PayloadError(f"not an OTLP ExportTraceServiceRequest in JSON ({exc})") from None
    else:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise PayloadError(f"not an OTLP ExportTraceServiceRequest in protobuf ({exc})") from None
    return request


READ_ATTRIBUTES = frozenset(
    PROVIDER + MODEL + INPUT + OUTPUT + CACHE_READ + CACHE_WRITE + REASONING + USER + SERVICE_TIER + TAGS
) | {"gen_ai.response.id", "gen_ai.operation.name", "openinference.span.kind"}


def _sample(span: Span, attrs: dict[str, Any]) -> str:
    """What a refused span is kept as: its ids, name, times and the attributes read (never prompts or replies)."""
    kept = {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "name": span.name,
        "startTimeUnixNano": str(span.start_time_unix_nano),
        "endTimeUnixNano": str(span.end_time_unix_nano),
        "attributes": {k: v for k, v in attrs.items() if k in READ_ATTRIBUTES},
    }
    return json.dumps(kept, default=str)


def parse_traces(request: ExportTraceServiceRequest, key_project: str | None) -> Parsed:
    """GenAI spans as calls (index: the span's position in the request); other spans counted as ignored."""
    parsed = Parsed()
    spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    if refused := too_many_items(spans, "spans"):
        raise refused
    index = -1
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        if not isinstance(service, str) or not service.strip() or service.startswith("unknown_service"):
            service = None  # the SDKs' default name when none is set is no project
        project = key_project or service
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                index += 1
                attrs = _attributes(span.attributes)
                if USAGE_KEYS.isdisjoint(attrs) or is_agent_span(attrs):
                    parsed.ignored += 1
                    continue
                try:
                    call = to_call(span_mapping(span, attrs, resource), project)
                except CallError as exc:
                    reason = f"span {span.span_id.hex()} ({span.name}): {exc}"
                    sample = _sample(span, attrs)
                    parsed.refused.append((index, Refusal(reason, sample)))
                else:
                    parsed.calls.append((index, call))
    return parsed


def encode_response(rejected: int, messages: list[str], json_body: bool) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected:
        shown = "; ".join(messages[:5]) + (f"; and {len(messages) - 5} more" if len(messages) > 5 else "")
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=rejected, error_message=f"{rejected} GenAI span(s) not recorded: {shown}"
            )
        )
    if json_body:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def encode_status(code: int, message: str, json_body: bool) -> bytes:
    """A ``google.rpc.Status`` for an error answer, in the request's encoding (OTLP/HTTP)."""
    status = status_pb2.Status(code=code, message=message)
    if json_body:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()
