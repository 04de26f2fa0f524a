"""A provider's usage object, exactly as its API returned it, normalised to the usage fields of a call.

Accepted: OpenAI Chat Completions and Responses usage, Anthropic Messages usage, Gemini ``usageMetadata``
(camelCase or snake_case); as a dict (decoded JSON) or an SDK object (``openai`` / ``anthropic`` pydantic
models, through ``.model_dump()``); the usage block alone or the whole response that holds it.

From the ``genai-prices`` package: its per-provider usage extractors (the package's data, read once
per shape by :func:`library_mappings`) say which provider field adds up to which count. Anthropic input
as ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``, cache reads and writes with
the ``cache_creation`` 5-minute / 1-hour breakdown, ``server_tool_use.web_search_requests``,
``output_tokens_details.thinking_tokens``; OpenAI ``prompt_tokens_details`` / ``input_tokens_details``
cached and written tokens and ``*_details.reasoning_tokens``; Gemini ``thoughtsTokenCount`` added to the
output (it is reported outside ``candidatesTokenCount``) and ``toolUsePromptTokenCount`` added to the
input. That is provider knowledge its maintainers keep up to date; the tests check that our results
equal ``genai_prices.extract_usage`` on every real payload, and that every path the extractors read
for these counts is one we validate. (Their sums are applied here rather than by calling
``extract_usage`` per call: that re-validates each value on every read, ~60 us a call.)

Here, because the package does not do it (or not the way a bill must):
- shape detection: the extractors must be told the provider and API flavour, a pasted block says neither;
  Anthropic and Responses both have ``input_tokens``/``output_tokens`` and are told apart by their other keys;
- validation naming the field path and the value: the extractors accept fractional floats and silently
  skip an optional count of the wrong type (``"cached_tokens": "8000"`` would be billed as uncached),
  and their messages carry no value; reads + writes above input and reasoning above output are refused;
- Gemini snake_case (the extractor reads camelCase only): each key is read under its camelCase name;
- the 5-minute share of cache writes: the package reports every write as ``cache_write_tokens`` and
  the parts as ``cache_write_5m_tokens``/``cache_write_1h_tokens``; a call's ``cache_write_tokens`` is
  the 5-minute part only (all of it when no breakdown is given);
- the service tier (Anthropic ``usage.service_tier``; OpenAI's response-level ``service_tier``), which
  the package keeps out of usage.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.pricing.rates import MAX_TOKENS, SERVICE_TIERS, Usage

# OpenAI's response-level ``service_tier`` reports the tier that served the call ("default" is standard);
# values with no per-token price of their own ("auto", "scale") are left unread.
OPENAI_RESPONSE_TIERS = {"default": "standard", "standard": "standard", "flex": "flex", "priority": "priority"}
SHAPE_NAMES = "OpenAI Chat Completions, OpenAI Responses, Anthropic Messages or Gemini usageMetadata"


class UsageShapeError(ValueError):
    """A usage object that cannot be read; the message names the field path and the value."""


@dataclass(frozen=True)
class UsageFields(Usage):
    """A call's usage fields (DESIGN.md, "A call's usage"), and the service tier the response reported
    (``None`` when it did not say)."""

    service_tier: str | None = None


@dataclass(frozen=True)
class UsageShape:
    name: str
    provider_id: str  # genai-prices provider and API flavour whose extractor reads this shape
    api_flavor: str
    root: str  # where the extractor looks for the block
    required: tuple[tuple[str, ...], ...]
    optional: tuple[tuple[str, ...], ...]
    input: tuple[tuple[str, ...], ...]  # the counts that add up to all input tokens (named in refusals)
    output: tuple[tuple[str, ...], ...]  # ... and to all output tokens


CHAT = UsageShape(
    "OpenAI Chat Completions",
    "openai",
    "chat",
    "usage",
    (("prompt_tokens",), ("completion_tokens",)),
    (
        ("prompt_tokens_details", "cached_tokens"),
        ("prompt_tokens_details", "cache_write_tokens"),
        ("completion_tokens_details", "reasoning_tokens"),
    ),
    (("prompt_tokens",),),
    (("completion_tokens",),),
)
RESPONSES = UsageShape(
    "OpenAI Responses",
    "openai",
    "responses",
    "usage",
    (("input_tokens",), ("output_tokens",)),
    (
        ("input_tokens_details", "cached_tokens"),
        ("input_tokens_details", "cache_write_tokens"),
        ("output_tokens_details", "reasoning_tokens"),
    ),
    (("input_tokens",),),
    (("output_tokens",),),
)
ANTHROPIC = UsageShape(
    "Anthropic Messages",
    "anthropic",
    "default",
    "usage",
    (("input_tokens",), ("output_tokens",)),
    (
        ("cache_creation_input_tokens",),
        ("cache_read_input_tokens",),
        ("cache_creation", "ephemeral_5m_input_tokens"),
        ("cache_creation", "ephemeral_1h_input_tokens"),
        ("server_tool_use", "web_search_requests"),
        ("output_tokens_details", "thinking_tokens"),
    ),
    (("input_tokens",), ("cache_creation_input_tokens",), ("cache_read_input_tokens",)),
    (("output_tokens",),),
)
GEMINI = UsageShape(
    "Gemini usageMetadata",
    "google",
    "default",
    "usageMetadata",
    (("promptTokenCount",),),
    (("candidatesTokenCount",), ("thoughtsTokenCount",), ("cachedContentTokenCount",), ("toolUsePromptTokenCount",)),
    (("promptTokenCount",), ("toolUsePromptTokenCount",)),
    (("candidatesTokenCount",), ("thoughtsTokenCount",)),
)
CACHE_COUNTS = frozenset(
    {
        "cached_tokens",
        "cache_write_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cachedContentTokenCount",
    }
)

GEMINI_SNAKE = {
    "prompt_token_count": "promptTokenCount",
    "candidates_token_count": "candidatesTokenCount",
    "thoughts_token_count": "thoughtsTokenCount",
    "cached_content_token_count": "cachedContentTokenCount",
    "tool_use_prompt_token_count": "toolUsePromptTokenCount",
    "total_token_count": "totalTokenCount",
}
GEMINI_CAMEL = {camel: snake for snake, camel in GEMINI_SNAKE.items()}
CHAT_KEYS = frozenset({"prompt_tokens", "completion_tokens"})
RESPONSES_MARKS = ("input_tokens_details", "total_tokens")  # also output_tokens_details.reasoning_tokens
ANTHROPIC_MARKS = (
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "server_tool_use",
    "service_tier",
    "inference_geo",
    "speed",
)  # also output_tokens_details.thinking_tokens


def normalise_usage(usage: object) -> UsageFields:
    """The usage fields of one call from a provider's usage object (or the response holding it).

    Raises :class:`UsageShapeError` naming the field path and the value for an unknown shape or a bad count.
    """
    data = _mapping(usage)
    if data is None:
        raise UsageShapeError(f"usage: {_show(usage)} is not a usage block")
    label, block, response = _unwrap(data)
    shape, label = _detect(block, label)
    keys = GEMINI_CAMEL if shape is GEMINI and _snake_case(block) else None
    counts = _read_counts(block, shape, label, keys)
    extracted = _extract(shape, counts)
    fields = _fields(shape, counts, extracted, label, keys)
    tier = _service_tier(block, response, label)
    return dataclasses.replace(fields, service_tier=tier) if tier is not None else fields


# reading plain data


def _mapping(value: object) -> Mapping[str, Any] | None:
    """A dict, or the dict of an SDK object (pydantic ``model_dump``, a dataclass, or plain attributes)."""
    if isinstance(value, Mapping):
        return value
    if value is None or isinstance(value, (str, bytes, int, float, Decimal, list, tuple, set)):
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        return dumped if isinstance(dumped, Mapping) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    attributes = getattr(value, "__dict__", None)
    return attributes if isinstance(attributes, dict) else None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _present(block: Mapping[str, Any], key: str) -> bool:
    return block.get(key) is not None


def _unwrap(data: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], Mapping[str, Any] | None]:
    """(label, usage block, the response around it or None) for a bare block or a whole response."""
    for key in ("usage", "usageMetadata", "usage_metadata"):
        if key in data:
            inner = data[key]
            block = _mapping(inner)
            if block is None:
                if inner is None:
                    raise UsageShapeError(f"{key}: the response has no usage block (the provider reported none)")
                raise UsageShapeError(f"{key}: {_show(inner)} is not a usage block")
            return key, block, data
    return "usage", data, None


def _snake_case(block: Mapping[str, Any]) -> bool:
    return any(_present(block, key) for key in GEMINI_SNAKE)


def _detect(block: Mapping[str, Any], label: str) -> tuple[UsageShape, str]:
    if any(_present(block, key) for key in GEMINI_SNAKE):
        return GEMINI, "usageMetadata" if label == "usageMetadata" else "usage_metadata"
    if any(_present(block, key) for key in GEMINI_CAMEL):
        return GEMINI, "usage_metadata" if label == "usage_metadata" else "usageMetadata"
    if label != "usage":
        raise UsageShapeError(f"{label}: no Gemini token counts in it (keys: {_keys(block)})")
    if any(_present(block, key) for key in CHAT_KEYS):
        return CHAT, label
    if _present(block, "input_tokens") or _present(block, "output_tokens"):
        output_details = _mapping(block.get("output_tokens_details")) or {}
        responses = [key for key in RESPONSES_MARKS if _present(block, key)]
        if output_details.get("reasoning_tokens") is not None:
            responses.append("output_tokens_details.reasoning_tokens")
        anthropic = [key for key in ANTHROPIC_MARKS if _present(block, key)]
        if output_details.get("thinking_tokens") is not None:
            anthropic.append("output_tokens_details.thinking_tokens")
        if responses and anthropic:
            raise UsageShapeError(
                f"{label}: both OpenAI Responses fields ({', '.join(responses)}) and Anthropic fields "
                f"({', '.join(anthropic)}); cannot tell which provider's counts these are"
            )
        # with neither mark both readings agree: input and output tokens, nothing cached
        return (ANTHROPIC if anthropic else RESPONSES), label
    raise UsageShapeError(
        f"{label}: not a usage object of a known shape (keys: {_keys(block)}); expected {SHAPE_NAMES}"
    )


def _keys(block: Mapping[str, Any]) -> str:
    names = [str(key) for key in block][:12]
    return ", ".join(names) if names else "none"


def _count(value: object, path: str) -> int:
    if isinstance(value, bool):
        raise UsageShapeError(f"{path}: {value!r} is not a whole number of tokens")
    if isinstance(value, float | Decimal):
        finite = math.isfinite(value) if isinstance(value, float) else value.is_finite()
        if not finite or value != int(value):
            raise UsageShapeError(f"{path}: {value!r} is not a whole number of tokens")
        value = int(value)
    if not isinstance(value, int):
        raise UsageShapeError(f"{path}: {_show(value)} is not a whole number of tokens")
    if value < 0:
        raise UsageShapeError(f"{path}: {value} is negative")
    if value > MAX_TOKENS:
        raise UsageShapeError(f"{path}: {value} is above the limit of {MAX_TOKENS:,} tokens")
    return value


def _path(label: str, steps: tuple[str, ...], keys: Mapping[str, str] | None) -> str:
    return ".".join((label, *((keys or {}).get(step, step) for step in steps)))


def _read_counts(
    block: Mapping[str, Any], shape: UsageShape, label: str, keys: Mapping[str, str] | None
) -> dict[tuple[str, ...], int]:
    """Every count the shape knows, validated; keyed by the shape's (camelCase) path. Absent or null: left out."""
    counts: dict[tuple[str, ...], int] = {}
    for steps in shape.required + shape.optional:
        node: object = block
        for depth, step in enumerate(steps):
            mapping = _mapping(node)
            if mapping is None:
                raise UsageShapeError(f"{_path(label, steps[:depth], keys)}: {_show(node)} is not an object")
            node = mapping.get((keys or {}).get(step, step))
            if node is None:
                break
        if node is None:
            if steps in shape.required:
                raise UsageShapeError(f"{_path(label, steps, keys)}: missing from the {shape.name} usage block")
            continue
        counts[steps] = _count(node, _path(label, steps, keys))
    return counts


# the library's extractor, then what it leaves to us

# the genai-prices usage keys a call's fields are made of
USED_KEYS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "output_reasoning_tokens",
        "web_searches",
    }
)


@functools.cache
def library_mappings(shape: UsageShape) -> tuple[tuple[tuple[str, ...], str], ...]:
    """(path in the usage block, genai-prices usage key) of the package's extractor for ``shape``.

    Read once from the package's data; running ``extract_usage`` itself per call cost ~60 us (it
    re-validates every value on each read), too slow for an import of millions of lines.
    """
    from genai_prices import data_snapshot  # imported on first use: it loads the whole price catalogue

    provider = data_snapshot.get_snapshot().find_provider(None, shape.provider_id, None)
    [extractor] = [e for e in provider.extractors or () if e.api_flavor == shape.api_flavor]
    mappings: list[tuple[tuple[str, ...], str]] = []
    for mapping in extractor.mappings:
        path = (mapping.path,) if isinstance(mapping.path, str) else tuple(mapping.path)
        if mapping.dest in USED_KEYS and all(isinstance(step, str) for step in path):
            mappings.append((tuple(str(step) for step in path), mapping.dest))
    return tuple(mappings)


def _extract(shape: UsageShape, counts: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """The package's usage keys, each the sum of the validated counts its extractor maps to it."""
    totals = dict.fromkeys(USED_KEYS, 0)
    for path, key in library_mappings(shape):
        value = counts.get(path)
        if value is not None:
            totals[key] += value
    return totals


def _fields(
    shape: UsageShape,
    counts: Mapping[tuple[str, ...], int],
    extracted: Mapping[str, int],
    label: str,
    keys: Mapping[str, str] | None,
) -> UsageFields:
    def reported(name: str) -> int:
        return extracted[name]

    input_tokens, output_tokens = reported("input_tokens"), reported("output_tokens")
    cached, writes = reported("cache_read_tokens"), reported("cache_write_tokens")
    writes_5m, writes_1h = writes, 0
    split = [steps for steps in counts if steps[0] == "cache_creation"]
    if split:
        parts_5m, parts_1h = reported("cache_write_5m_tokens"), reported("cache_write_1h_tokens")
        if parts_5m + parts_1h == writes:
            writes_5m, writes_1h = parts_5m, parts_1h
        elif parts_5m + parts_1h:  # an all-zero breakdown says nothing: every write is a 5-minute one
            raise UsageShapeError(
                f"{label}.cache_creation: ephemeral_5m_input_tokens {parts_5m} + ephemeral_1h_input_tokens "
                f"{parts_1h} = {parts_5m + parts_1h} is not {label}.cache_creation_input_tokens {writes}"
            )
    reasoning = reported("output_reasoning_tokens")

    def named(steps: tuple[str, ...]) -> str:
        return _path(label, steps, keys)

    if cached + writes > input_tokens:
        parts = [steps for steps in counts if steps[-1] in CACHE_COUNTS and counts[steps]]
        raise UsageShapeError(
            f"{' + '.join(named(steps) for steps in parts)}: {cached + writes} is more than "
            f"{' + '.join(named(steps) for steps in counts if steps in shape.input)} {input_tokens}"
        )
    if reasoning > output_tokens:
        [steps] = [steps for steps in counts if steps[-1] in ("reasoning_tokens", "thinking_tokens")]
        raise UsageShapeError(
            f"{named(steps)}: {reasoning} is more than "
            f"{' + '.join(named(steps) for steps in counts if steps in shape.output)} {output_tokens}"
        )
    return UsageFields(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=writes_5m,
        cache_write_1h_tokens=writes_1h,
        reasoning_tokens=reasoning,
        web_search_calls=reported("web_searches"),
    )


def _service_tier(block: Mapping[str, Any], response: Mapping[str, Any] | None, label: str) -> str | None:
    """Anthropic's ``usage.service_tier`` (strict), else an OpenAI response's ``service_tier`` (known values)."""
    tier = block.get("service_tier")
    if tier is not None:
        if not isinstance(tier, str) or tier.strip().lower() not in SERVICE_TIERS:
            raise UsageShapeError(
                f"{label}.service_tier: {_show(tier)} is not a known service tier ({', '.join(SERVICE_TIERS)})"
            )
        return tier.strip().lower()
    outer = response.get("service_tier") if response is not None else None
    return OPENAI_RESPONSE_TIERS.get(outer.strip().lower()) if isinstance(outer, str) else None
