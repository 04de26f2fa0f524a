"""Provider usage objects, as the APIs and SDKs return them, normalised to a call's usage fields."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic.types as anthropic_types
import openai.types as openai_types
import openai.types.chat as openai_chat
import openai.types.responses as openai_responses
import pytest

from core.pricing.provider_usage import (
    ANTHROPIC,
    CHAT,
    GEMINI,
    RESPONSES,
    UsageFields,
    UsageShape,
    UsageShapeError,
    library_mappings,
    normalise_usage,
)

# Anthropic Messages: input_tokens excludes the cache; reads and writes are added to it.
ANTHROPIC_CACHED = json.loads(
    """{"id": "msg_01HCDu5LRGeP2o7s2xGmxyx8", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "The main themes are..."}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 3, "cache_creation_input_tokens": 418, "cache_read_input_tokens": 1111,
              "output_tokens": 503}}"""
)
ANTHROPIC_SPLIT = json.loads(
    """{"input_tokens": 12, "cache_creation_input_tokens": 2467, "cache_read_input_tokens": 10240,
    "cache_creation": {"ephemeral_5m_input_tokens": 467, "ephemeral_1h_input_tokens": 2000},
    "output_tokens": 389, "service_tier": "standard"}"""
)
ANTHROPIC_WEB_SEARCH = json.loads(
    """{"input_tokens": 105, "output_tokens": 6039, "cache_read_input_tokens": 7123,
    "cache_creation_input_tokens": 7345, "server_tool_use": {"web_search_requests": 1}}"""
)
ANTHROPIC_BATCH_THINKING = json.loads(
    """{"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "output_tokens_details": {"thinking_tokens": 411}, "server_tool_use": null, "service_tier": "batch"}"""
)
# Gemini 2.5 Pro: thoughts are reported outside candidatesTokenCount (11 + 1104 + 1290 = 2405).
GEMINI_THOUGHTS = json.loads(
    """{"candidates": [{"content": {"parts": [{"text": "..."}], "role": "model"}, "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 1104, "totalTokenCount": 2405,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}], "thoughtsTokenCount": 1290},
    "modelVersion": "gemini-2.5-pro", "responseId": "mXqJaKWDEtqOz7IPsu2xwAY"}"""
)
GEMINI_THOUGHTS_SNAKE = {  # the same, as google-genai's GenerateContentResponse.model_dump() gives it
    "model_version": "gemini-2.5-pro",
    "usage_metadata": {
        "cache_tokens_details": None,
        "cached_content_token_count": None,
        "candidates_token_count": 1104,
        "prompt_token_count": 11,
        "prompt_tokens_details": [{"modality": "TEXT", "token_count": 11}],
        "thoughts_token_count": 1290,
        "tool_use_prompt_token_count": None,
        "total_token_count": 2405,
        "traffic_type": None,
    },
}
GEMINI_CACHED_TOOLS = {
    "promptTokenCount": 2050,
    "cachedContentTokenCount": 2048,
    "candidatesTokenCount": 60,
    "toolUsePromptTokenCount": 120,
    "thoughtsTokenCount": 300,
    "totalTokenCount": 2530,
}
OPENAI_CHAT = json.loads(
    """{"prompt_tokens": 10000, "completion_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 8000},
    "completion_tokens_details": {"reasoning_tokens": 1500}}"""
)
OPENAI_RESPONSE = json.loads(
    """{"id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response",
    "created_at": 1741476542, "status": "completed", "model": "o3-2025-04-16", "service_tier": "default",
    "output": [], "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "error": null,
    "incomplete_details": null, "instructions": null, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
    "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 87,
    "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 123}}"""
)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            ANTHROPIC_CACHED["usage"],
            UsageFields(1532, 503, cached_input_tokens=1111, cache_write_tokens=418),
            id="anthropic-cache-read-and-write",
        ),
        pytest.param(
            ANTHROPIC_CACHED,
            UsageFields(1532, 503, cached_input_tokens=1111, cache_write_tokens=418),
            id="anthropic-whole-message",
        ),
        pytest.param(
            ANTHROPIC_SPLIT,
            UsageFields(
                12 + 2467 + 10240,
                389,
                cached_input_tokens=10240,
                cache_write_tokens=467,
                cache_write_1h_tokens=2000,
                service_tier="standard",
            ),
            id="anthropic-5m-and-1h-writes",
        ),
        pytest.param(
            ANTHROPIC_WEB_SEARCH,
            UsageFields(105 + 7123 + 7345, 6039, cached_input_tokens=7123, cache_write_tokens=7345, web_search_calls=1),
            id="anthropic-web-search",
        ),
        pytest.param(
            ANTHROPIC_BATCH_THINKING,
            UsageFields(2095, 503, reasoning_tokens=411, service_tier="batch"),
            id="anthropic-batch-thinking-zero-split",
        ),
        pytest.param(
            {
                "input_tokens": 3,
                "cache_creation_input_tokens": 418,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 2,
            },
            UsageFields(421, 2, cache_write_tokens=418),
            id="anthropic-all-zero-breakdown-means-5-minute",
        ),
        pytest.param({"input_tokens": 7, "output_tokens": 2}, UsageFields(7, 2), id="input-output-only"),
        pytest.param(
            GEMINI_THOUGHTS, UsageFields(11, 1104 + 1290, reasoning_tokens=1290), id="gemini-2.5-pro-thoughts-camel"
        ),
        pytest.param(
            GEMINI_THOUGHTS["usageMetadata"], UsageFields(11, 2394, reasoning_tokens=1290), id="gemini-block-camel"
        ),
        pytest.param(
            GEMINI_THOUGHTS_SNAKE, UsageFields(11, 2394, reasoning_tokens=1290), id="gemini-2.5-pro-thoughts-snake"
        ),
        pytest.param(
            GEMINI_THOUGHTS_SNAKE["usage_metadata"],
            UsageFields(11, 2394, reasoning_tokens=1290),
            id="gemini-block-snake",
        ),
        pytest.param(
            GEMINI_CACHED_TOOLS,
            UsageFields(2050 + 120, 360, cached_input_tokens=2048, reasoning_tokens=300),
            id="gemini-cache-and-tool-use-prompt",  # tool-use prompt tokens are input, as genai-prices counts them
        ),
        pytest.param(
            OPENAI_CHAT,
            UsageFields(10000, 2000, cached_input_tokens=8000, reasoning_tokens=1500),
            id="openai-chat-cached-reasoning",
        ),
        pytest.param(
            {"id": "chatcmpl-1", "service_tier": "flex", "usage": OPENAI_CHAT},
            UsageFields(10000, 2000, cached_input_tokens=8000, reasoning_tokens=1500, service_tier="flex"),
            id="openai-chat-completion-flex",
        ),
        pytest.param(
            OPENAI_RESPONSE,
            UsageFields(36, 87, reasoning_tokens=64, service_tier="standard"),
            id="openai-responses-whole-response",
        ),
        pytest.param(
            {"input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4096}, "output_tokens": 10},
            UsageFields(5000, 10, cached_input_tokens=4096),
            id="openai-responses-cached",
        ),
        pytest.param(
            {"prompt_tokens": 12.0, "completion_tokens": 3, "total_tokens": 15},
            UsageFields(12, 3),
            id="a-whole-float-is-a-count",
        ),
        pytest.param(
            {"id": "x", "service_tier": "scale", "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
            UsageFields(1, 1),
            id="openai-tier-without-a-price-is-left-unread",
        ),
    ],
)
def test_a_provider_usage_object_is_normalised(usage: object, expected: UsageFields) -> None:
    assert normalise_usage(usage) == expected


def test_sdk_objects_of_the_real_openai_and_anthropic_packages() -> None:
    assert normalise_usage(
        anthropic_types.Usage(
            input_tokens=3,
            cache_creation_input_tokens=418,
            cache_read_input_tokens=1111,
            cache_creation=anthropic_types.CacheCreation(ephemeral_5m_input_tokens=18, ephemeral_1h_input_tokens=400),
            server_tool_use=anthropic_types.ServerToolUsage(web_search_requests=3, web_fetch_requests=0),
            output_tokens=50,
            service_tier="priority",
        )
    ) == UsageFields(
        1532,
        50,
        cached_input_tokens=1111,
        cache_write_tokens=18,
        cache_write_1h_tokens=400,
        web_search_calls=3,
        service_tier="priority",
    )
    message = anthropic_types.Message.model_validate(ANTHROPIC_CACHED)
    assert normalise_usage(message) == UsageFields(1532, 503, cached_input_tokens=1111, cache_write_tokens=418)
    assert normalise_usage(anthropic_types.Usage(input_tokens=3, output_tokens=5)) == UsageFields(3, 5)

    chat = openai_types.CompletionUsage(
        prompt_tokens=10000,
        completion_tokens=2000,
        total_tokens=12000,
        prompt_tokens_details=openai_types.completion_usage.PromptTokensDetails(cached_tokens=8000),
        completion_tokens_details=openai_types.completion_usage.CompletionTokensDetails(reasoning_tokens=1500),
    )
    assert normalise_usage(chat) == UsageFields(10000, 2000, cached_input_tokens=8000, reasoning_tokens=1500)
    completion = openai_chat.ChatCompletion(
        id="chatcmpl-9", object="chat.completion", created=1, model="gpt-5", choices=[], usage=chat
    )
    assert normalise_usage(completion) == normalise_usage(chat)

    responses = openai_responses.ResponseUsage(
        input_tokens=36,
        input_tokens_details=openai_responses.response_usage.InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=87,
        output_tokens_details=openai_responses.response_usage.OutputTokensDetails(reasoning_tokens=64),
        total_tokens=123,
    )
    assert normalise_usage(responses) == UsageFields(36, 87, reasoning_tokens=64)
    assert normalise_usage(openai_responses.Response.model_validate(OPENAI_RESPONSE)) == UsageFields(
        36, 87, reasoning_tokens=64, service_tier="standard"
    )


def test_an_object_with_plain_attributes_is_read() -> None:
    class Block:
        def __init__(self) -> None:
            self.prompt_tokens = 4
            self.completion_tokens = 2

    assert normalise_usage(Block()) == UsageFields(4, 2)


def test_a_decimal_count_from_a_json_decoder_is_read() -> None:
    usage = json.loads('{"prompt_tokens": 10.0, "completion_tokens": 2}', parse_float=Decimal)
    assert normalise_usage(usage) == UsageFields(10, 2)


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        pytest.param(None, "usage: None is not a usage block", id="none"),
        pytest.param("lots", "usage: 'lots' is not a usage block", id="string"),
        pytest.param([1, 2], "usage: [1, 2] is not a usage block", id="list"),
        pytest.param(
            {"tokens": 5},
            "usage: not a usage object of a known shape (keys: tokens); expected OpenAI Chat Completions, "
            "OpenAI Responses, Anthropic Messages or Gemini usageMetadata",
            id="unknown-shape",
        ),
        pytest.param({}, "usage: not a usage object of a known shape (keys: none)", id="empty"),
        pytest.param({"id": "x", "usage": None}, "usage: the response has no usage block", id="response-no-usage"),
        pytest.param({"usage": 5}, "usage: 5 is not a usage block", id="usage-not-an-object"),
        pytest.param({"usageMetadata": {"x": 1}}, "usageMetadata: no Gemini token counts in it", id="gemini-empty"),
        pytest.param({"completion_tokens": 5}, "usage.prompt_tokens: missing", id="chat-missing-prompt"),
        pytest.param({"prompt_tokens": 5}, "usage.completion_tokens: missing", id="chat-missing-completion"),
        pytest.param({"input_tokens": 5}, "usage.output_tokens: missing", id="missing-output"),
        pytest.param({"candidatesTokenCount": 5}, "usageMetadata.promptTokenCount: missing", id="gemini-missing"),
        pytest.param(
            {"candidates_token_count": 5}, "usage_metadata.prompt_token_count: missing", id="gemini-snake-missing"
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": -3}},
            "usage.prompt_tokens_details.cached_tokens: -3 is negative",
            id="negative-cached",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": -1}, "usage.completion_tokens: -1 is negative", id="negative"
        ),
        pytest.param(
            {"prompt_tokens": "10", "completion_tokens": 1},
            "usage.prompt_tokens: '10' is not a whole number of tokens",
            id="string-count",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": "8"}},
            "usage.prompt_tokens_details.cached_tokens: '8' is not a whole number of tokens",
            id="string-optional-count",  # genai-prices alone would skip it and bill the 8 as uncached
        ),
        pytest.param(
            {"prompt_tokens": 10.5, "completion_tokens": 1},
            "usage.prompt_tokens: 10.5 is not a whole number of tokens",
            id="fractional-float",
        ),
        pytest.param(
            {"prompt_tokens": float("nan"), "completion_tokens": 1},
            "usage.prompt_tokens: nan is not a whole number of tokens",
            id="nan",
        ),
        pytest.param(
            {"prompt_tokens": True, "completion_tokens": 1},
            "usage.prompt_tokens: True is not a whole number of tokens",
            id="bool",
        ),
        pytest.param(
            {"prompt_tokens": 10**13, "completion_tokens": 1},
            "usage.prompt_tokens: 10000000000000 is above the limit",
            id="too-many",
        ),
        pytest.param(
            {"input_tokens": 3, "output_tokens": 1, "server_tool_use": {"web_search_requests": 1.5}},
            "usage.server_tool_use.web_search_requests: 1.5 is not a whole number of tokens",
            id="fractional-web-searches",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": "lots"},
            "usage.prompt_tokens_details: 'lots' is not an object",
            id="details-not-an-object",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
            "usage.prompt_tokens_details.cached_tokens: 11 is more than usage.prompt_tokens 10",
            id="cached-above-input",
        ),
        pytest.param(
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 6, "cache_write_tokens": 5},
            },
            "usage.prompt_tokens_details.cached_tokens + usage.prompt_tokens_details.cache_write_tokens: "
            "11 is more than usage.prompt_tokens 10",
            id="reads-plus-writes-above-input",
        ),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 12}},
            "usage.input_tokens_details.cached_tokens: 12 is more than usage.input_tokens 10",
            id="responses-cached-above-input",
        ),
        pytest.param(
            {"promptTokenCount": 10, "candidatesTokenCount": 1, "cachedContentTokenCount": 30},
            "usageMetadata.cachedContentTokenCount: 30 is more than usageMetadata.promptTokenCount 10",
            id="gemini-cached-above-input",
        ),
        pytest.param(
            {"prompt_token_count": 10, "cached_content_token_count": 30},
            "usage_metadata.cached_content_token_count: 30 is more than usage_metadata.prompt_token_count 10",
            id="gemini-snake-cached-above-input",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 2000, "completion_tokens_details": {"reasoning_tokens": 2001}},
            "usage.completion_tokens_details.reasoning_tokens: 2001 is more than usage.completion_tokens 2000",
            id="reasoning-above-output",
        ),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 6}},
            "usage.output_tokens_details.reasoning_tokens: 6 is more than usage.output_tokens 5",
            id="responses-reasoning-above-output",
        ),
        pytest.param(
            {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"thinking_tokens": 6}},
            "usage.output_tokens_details.thinking_tokens: 6 is more than usage.output_tokens 5",
            id="anthropic-thinking-above-output",
        ),
        pytest.param(
            {
                "input_tokens": 3,
                "output_tokens": 1,
                "cache_creation_input_tokens": 418,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50},
            },
            "usage.cache_creation: ephemeral_5m_input_tokens 100 + ephemeral_1h_input_tokens 50 = 150 "
            "is not usage.cache_creation_input_tokens 418",
            id="anthropic-split-disagrees",
        ),
        pytest.param(
            {"input_tokens": 3, "output_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": -1}},
            "usage.cache_creation.ephemeral_1h_input_tokens: -1 is negative",
            id="anthropic-negative-1h",
        ),
        pytest.param(
            {"input_tokens": 3, "output_tokens": 1, "service_tier": "turbo"},
            "usage.service_tier: 'turbo' is not a known service tier (standard, batch, flex, priority)",
            id="unknown-service-tier",
        ),
        pytest.param(
            {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 1, "total_tokens": 4},
            "usage: both OpenAI Responses fields (total_tokens) and Anthropic fields (cache_read_input_tokens)",
            id="ambiguous-shape",
        ),
    ],
)
def test_a_bad_usage_object_is_refused_naming_the_field_and_value(usage: object, message: str) -> None:
    with pytest.raises(UsageShapeError) as caught:
        normalise_usage(usage)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


# The provider knowledge comes from genai-prices: same answers, and no count it reads left unvalidated.

LIBRARY_CASES = [
    (ANTHROPIC_CACHED, "anthropic", "default"),
    ({"usage": ANTHROPIC_SPLIT}, "anthropic", "default"),
    ({"usage": ANTHROPIC_WEB_SEARCH}, "anthropic", "default"),
    ({"usage": ANTHROPIC_BATCH_THINKING}, "anthropic", "default"),
    (GEMINI_THOUGHTS, "google", "default"),
    ({"usageMetadata": GEMINI_CACHED_TOOLS}, "google", "default"),
    ({"usage": OPENAI_CHAT}, "openai", "chat"),
    (OPENAI_RESPONSE, "openai", "responses"),
]


@pytest.mark.parametrize(("response", "provider_id", "flavor"), LIBRARY_CASES)
def test_the_counts_agree_with_genai_prices_extract_usage(response: dict, provider_id: str, flavor: str) -> None:
    import genai_prices

    response = {key: value for key, value in response.items() if key not in ("model", "modelVersion")}
    theirs = genai_prices.extract_usage(response, provider_id=provider_id, api_flavor=flavor).usage
    ours = normalise_usage(response)
    assert ours.input_tokens == theirs.reported_value("input_tokens")
    assert ours.output_tokens == theirs.reported_value("output_tokens")
    assert ours.cached_input_tokens == theirs.reported_value("cache_read_tokens")
    assert ours.cache_write_tokens + ours.cache_write_1h_tokens == theirs.reported_value("cache_write_tokens")
    assert ours.cache_write_1h_tokens == theirs.reported_value("cache_write_1h_tokens")
    assert ours.reasoning_tokens == theirs.reported_value("output_reasoning_tokens")
    assert ours.web_search_calls == theirs.reported_value("web_searches")


@pytest.mark.parametrize("shape", [CHAT, RESPONSES, ANTHROPIC, GEMINI], ids=lambda shape: shape.name)
def test_every_path_the_library_reads_for_our_fields_is_one_we_validate(shape: UsageShape) -> None:
    mappings = library_mappings(shape)
    assert {key for _path, key in mappings} >= {"input_tokens", "output_tokens"}
    for path, _key in mappings:
        assert path in shape.required + shape.optional
