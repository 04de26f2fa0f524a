"""Recording real calls from OpenAI-compatible chat completions, and a drop-in client wrapper.

Most providers and gateways (the HuggingFace router, Groq, OpenAI, Mistral, ...) return a
``usage`` block with the token counts they bill. We record exactly those counts, priced by the
engine; without them we record nothing, because tokens guessed from text would be a guessed bill.
The response ``id`` becomes the ``request_id``, so a retried or re-sent response is billed once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine

from core.pricing import PricingError, clean_name
from core.usage import Call, CallError, RecordedCall, make_call, record_usage

logger = logging.getLogger(__name__)

_MISSING = object()
_WRAPPED_MARK = "_spendboard_tracked"
ClientT = TypeVar("ClientT")


class TrackingError(ValueError):
    """A response that cannot be recorded; the message says which field is missing or wrong."""


@dataclass(frozen=True)
class Usage:
    """The billable figures of one chat completion, as the provider reported them."""

    request_id: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


@dataclass(frozen=True)
class TrackedCall:
    """A response recorded: the call as validated and what the store did with it."""

    call: Call
    recorded: RecordedCall


def _field(obj: object, name: str) -> object:
    """``obj[name]`` for dicts, ``obj.name`` for the openai / huggingface_hub response objects."""
    if obj is None:
        return _MISSING
    if isinstance(obj, Mapping):
        return obj.get(name, _MISSING)
    return getattr(obj, name, _MISSING)


def _count(value: object, field: str) -> int:
    if value is _MISSING or value is None:
        raise TrackingError(f"{field}: missing from the response's usage block; nothing recorded")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TrackingError(f"{field}: {value!r} is not a whole number of tokens; nothing recorded")
    return value


def read_usage(response: object) -> Usage:
    """The ``usage`` block, ``id`` and ``model`` of a chat completion (dict or client object)."""
    if response is None:
        raise TrackingError("response: None is not a chat completion; nothing recorded")
    usage = _field(response, "usage")
    if usage is _MISSING or usage is None:
        raise TrackingError(
            "usage: the response has no usage block (the provider did not report token counts); nothing recorded"
        )
    if isinstance(usage, (str, bytes, int, float, list, tuple)):
        raise TrackingError(f"usage: {usage!r} is not a usage block; nothing recorded")
    input_tokens = _count(_field(usage, "prompt_tokens"), "usage.prompt_tokens")
    output_tokens = _count(_field(usage, "completion_tokens"), "usage.completion_tokens")
    details = _field(usage, "prompt_tokens_details")
    cached_raw = _field(details, "cached_tokens") if details is not _MISSING else _MISSING
    cached = (
        0
        if cached_raw is _MISSING or cached_raw is None
        else _count(cached_raw, "usage.prompt_tokens_details.cached_tokens")
    )
    if cached > input_tokens:
        raise TrackingError(
            f"usage.prompt_tokens_details.cached_tokens: {cached} is more than usage.prompt_tokens {input_tokens}; "
            "nothing recorded"
        )
    request_id = _field(response, "id")
    model = _field(response, "model")
    return Usage(
        request_id=request_id if isinstance(request_id, str) and request_id.strip() else None,
        model=model if isinstance(model, str) and model.strip() else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
    )


def track_completion(
    engine: Engine,
    response: object,
    provider: str,
    *,
    model: str | None = None,
    user: str | None = None,
) -> TrackedCall:
    """Record one chat completion; ``model`` (what was asked for) wins over the response's model name.

    The requested name is the one the price table is keyed by; providers often answer with a
    dated or routed variant of it.
    """
    usage = read_usage(response)
    chosen_model = model if model and model.strip() else usage.model
    if chosen_model is None:
        raise TrackingError("model: the response names no model and none was given; nothing recorded")
    try:
        call = make_call(
            provider,
            chosen_model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            user=user,
            request_id=usage.request_id,
        )
    except CallError as exc:
        raise TrackingError(f"{exc}; nothing recorded") from None
    return TrackedCall(call, record_usage(engine, call))


def _record_quietly(engine: Engine, response: object, provider: str, model: object, user: str | None) -> None:
    try:
        track_completion(engine, response, provider, model=model if isinstance(model, str) else None, user=user)
    except Exception:  # a billing hiccup must never break the caller's request
        logger.warning("spendboard: could not record a chat completion for %s", provider, exc_info=True)


def _wrap(method: Callable[..., Any], engine: Engine, provider: str, user: str | None) -> Callable[..., Any]:
    @functools.wraps(method)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        response = method(*args, **kwargs)
        if kwargs.get("stream"):
            logger.info("spendboard: streaming completions are not recorded (no usage block until the end)")
            return response
        _record_quietly(engine, response, provider, kwargs.get("model"), user)
        return response

    setattr(tracked, _WRAPPED_MARK, True)
    return tracked


def track(client: ClientT, engine: Engine, provider: str, *, user: str | None = None) -> ClientT:
    """Record every non-streaming chat completion ``client`` makes; returns the same client.

    Duck-typed: an ``openai.OpenAI``-style client (``client.chat.completions.create``) or a
    ``huggingface_hub.InferenceClient`` (``client.chat_completion``, which its
    ``chat.completions.create`` alias also goes through). What the caller gets back is unchanged.
    """
    try:
        clean_name(provider, "provider")
        if user is not None:
            clean_name(user, "user")
    except PricingError as exc:
        raise TrackingError(str(exc)) from None
    if callable(getattr(client, "chat_completion", None)):
        owner: object = client
        name = "chat_completion"
    else:
        owner = getattr(getattr(client, "chat", None), "completions", None)
        name = "create"
        if not callable(getattr(owner, name, None)):
            raise TrackingError(
                f"client: {type(client).__name__} has neither chat.completions.create nor chat_completion"
            )
    method = getattr(owner, name)
    if not getattr(method, _WRAPPED_MARK, False):
        setattr(owner, name, _wrap(method, engine, provider, user))
    return client
