"""A LiteLLM payload without any token counts is refused, never recorded as a $0 call (issue 22, point 2);
a failure LiteLLM reports stays recorded with status error."""

from __future__ import annotations

import json

from core.ingest.litellm import parse_litellm


def _payload(request_id: str, **fields: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "litellm_call_id": request_id,
        "custom_llm_provider": "openai",
        "model": "gpt-4o",
        "startTime": 1_764_000_000.0,
        "endTime": 1_764_000_001.2,
        "status": "success",
        "metadata": {"usage_object": {"prompt_tokens": 100, "completion_tokens": 20}},
    }
    payload.update(fields)
    return payload


def test_a_payload_without_token_counts_is_refused_with_a_reason() -> None:
    body = json.dumps(
        [
            _payload("known"),
            _payload("unknown", metadata={}),  # no usage object, no prompt_tokens: was a $0 call
            _payload("failed", metadata={}, status="failure"),
        ]
    ).encode()
    parsed = parse_litellm(body, None)
    recorded = {call.request_id: call for _index, call in parsed.calls}
    assert set(recorded) == {"known", "failed"}
    ((index, refusal),) = parsed.refused
    assert index == 1 and "usage: no token counts" in refusal.reason and "unknown" in refusal.reason
    assert recorded["failed"].status == "error" and recorded["failed"].input_tokens == 0
