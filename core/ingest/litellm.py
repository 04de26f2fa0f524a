"""LiteLLM's StandardLoggingPayload (its ``generic_api`` logging callback) to calls.

The callback sends a JSON array (``json_array``, the default), NDJSON (``ndjson``) or
one object (``single``). Request id: ``litellm_call_id``, else ``id``; provider:
``custom_llm_provider``; user: ``end_user``, else ``metadata.user_api_key_user_id``;
time: ``startTime`` (epoch seconds). Tokens come from ``metadata.usage_object``, the
OpenAI-shaped usage LiteLLM keeps (its ``prompt_tokens`` include cache reads and
writes, also for Anthropic), else from the payload's own ``prompt_tokens`` and
``completion_tokens``. A failed call (``status: failure``) is recorded with status ``error``.
Tags: the union of ``request_tags`` and ``metadata.tags``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from core.ingest.calls import PayloadError, load_json, sample
from core.ingest.limits import too_many_items
from core.ingest.record import Parsed, to_call
from core.ingest.rejections import Refusal
from core.recording.calls import MAX_LATENCY_MS, CallError
from core.recording.tags import TagError, union_tags

TIERS = {"flex": "flex", "priority": "priority", "batch": "batch"}


def payloads_of(body: bytes) -> list[object]:
    """The payloads of a body: a JSON array, one object, or NDJSON (one object a line)."""
    stripped = body.strip()
    if not stripped:
        raise PayloadError("the body is empty (expected LiteLLM logging payloads as JSON)")
    try:
        value = load_json(stripped)
    except PayloadError:
        if b"\n" not in stripped:
            raise
        items: list[object] = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                items.append(_Broken(f"NDJSON line {number} is not JSON ({exc})", line[:200].decode(errors="replace")))
        return items
    return value if isinstance(value, list) else [value]


class _Broken:
    def __init__(self, reason: str, text: str) -> None:
        self.reason = reason
        self.text = text


def _get(mapping: object, *path: str) -> Any:
    for name in path:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(name)
    return mapping


def _count(value: Any) -> Any:
    return 0 if value is None else value


def payload_mapping(item: Mapping[str, Any]) -> dict[str, Any]:
    """The call one StandardLoggingPayload describes, as import-style fields."""
    usage = _get(item, "metadata", "usage_object")
    if not isinstance(usage, Mapping):
        usage = {}
    input_tokens = usage.get("prompt_tokens", item.get("prompt_tokens"))
    output_tokens = usage.get("completion_tokens", item.get("completion_tokens"))
    failed = item.get("status") == "failure"
    if input_tokens is None and output_tokens is None and not failed:
        # a call whose usage is unknown is refused, never priced as $0 (a failure LiteLLM reports is kept)
        raise CallError(
            "usage: no token counts (neither metadata.usage_object nor prompt_tokens/completion_tokens): "
            "the cost of this call is unknown"
        )
    cached = _get(usage, "prompt_tokens_details", "cached_tokens")
    if cached is None:
        cached = usage.get("cache_read_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    if written is None:
        written = _get(usage, "prompt_tokens_details", "cache_creation_tokens")
    written_1h = _get(usage, "prompt_tokens_details", "cache_creation_token_details", "ephemeral_1h_input_tokens")
    if isinstance(written, int) and isinstance(written_1h, int) and 0 < written_1h <= written:
        written -= written_1h  # the 1-hour writes are priced apart
    start = item.get("startTime")
    end = item.get("endTime")
    if isinstance(start, bool) or not isinstance(start, int | float) or not math.isfinite(start):
        raise CallError(f"timestamp: startTime {start!r} is not epoch seconds")
    latency = None
    if end is not None:  # out of range is the item's refusal, never a call recorded without its latency
        if isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end) or end < start:
            raise CallError(f"latency_ms: endTime {end!r} is not epoch seconds at or after startTime {start!r}")
        if (end - start) * 1000 > MAX_LATENCY_MS:
            raise CallError(f"latency_ms: endTime {end!r} is more than {MAX_LATENCY_MS:,} ms after startTime")
        latency = round((end - start) * 1000)
    request_id = item.get("litellm_call_id") or item.get("id")
    user = item.get("end_user") or _get(item, "metadata", "user_api_key_user_id")
    tier = usage.get("service_tier") or _get(item, "hidden_params", "additional_headers", "service_tier")
    model = item.get("model")
    try:
        moment = datetime.fromtimestamp(start, UTC)
    except (OverflowError, OSError, ValueError):
        raise CallError(f"timestamp: startTime {start!r} is not epoch seconds") from None
    return {
        "timestamp": moment,
        "provider": item.get("custom_llm_provider"),
        "model": model,
        "input_tokens": _count(input_tokens),
        "output_tokens": _count(output_tokens),
        "cached_input_tokens": _count(cached),
        "cache_write_tokens": _count(written),
        "cache_write_1h_tokens": _count(written_1h),
        "reasoning_tokens": _count(_get(usage, "completion_tokens_details", "reasoning_tokens")),
        "web_search_calls": _count(_get(usage, "server_tool_use", "web_search_requests")),
        "service_tier": TIERS.get(tier.lower(), "standard") if isinstance(tier, str) else "standard",
        "user": user if isinstance(user, str) and user.strip() else None,
        "request_id": request_id,
        "latency_ms": latency,
        "status": "error" if failed else "ok",
        "tags": _tags(item),
    }


def _tags(item: Mapping[str, Any]) -> tuple[str, ...]:
    try:
        return union_tags(("request_tags", item.get("request_tags")), ("metadata.tags", _get(item, "metadata", "tags")))
    except TagError as exc:
        raise CallError(str(exc)) from None


SAMPLE_FIELDS = (
    "id",
    "litellm_call_id",
    "status",
    "custom_llm_provider",
    "model",
    "startTime",
    "endTime",
    "prompt_tokens",
    "completion_tokens",
    "end_user",
    "request_tags",
)


def _sample(item: object) -> str:
    """What a refused payload is kept as: the fields read, never its messages or response (prompts, PII)."""
    if not isinstance(item, dict):
        return sample(item)
    kept: dict[str, Any] = {name: item[name] for name in SAMPLE_FIELDS if name in item}
    usage = _get(item, "metadata", "usage_object")
    if usage is not None:
        kept["metadata"] = {"usage_object": usage}
    return sample(kept)


def parse_litellm(body: bytes, default_project: str | None) -> Parsed:
    """Calls and per-item refusals; :class:`PayloadError` only when the body is not JSON at all."""
    parsed = Parsed()
    items = payloads_of(body)
    if refused := too_many_items(len(items), "payloads"):
        raise refused
    for index, item in enumerate(items):
        try:
            if isinstance(item, _Broken):
                raise CallError(item.reason)
            if not isinstance(item, dict):
                raise CallError(f"expected a StandardLoggingPayload object, found {type(item).__name__}")
            call = to_call(payload_mapping(item), default_project)
        except CallError as exc:
            text = item.text if isinstance(item, _Broken) else _sample(item)
            parsed.refused.append((index, Refusal(str(exc), text)))
        else:
            parsed.calls.append((index, call))
    return parsed
