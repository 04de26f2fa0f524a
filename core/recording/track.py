"""Recording real calls: chat completions, OpenAI Responses and Anthropic Messages, and a drop-in wrapper.

Providers return a usage block with the token counts they bill. We record exactly those counts,
read through :func:`core.pricing.provider_usage.normalise_usage` (every shape it knows: OpenAI Chat
Completions and Responses, Anthropic Messages with cache writes, reads and web searches, Gemini),
priced by the engine; without them we record nothing, because tokens guessed from text would be a
guessed bill. The response ``id`` becomes the ``request_id``, so a retried or re-sent response is
billed once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine

from core.pricing.provider_usage import UsageFields, UsageShapeError, normalise_usage
from core.recording import hooks
from core.recording.calls import Call, CallError, RecordedCall, make_call, record_usage
from core.storage.checkpoint import start_checkpointer

logger = logging.getLogger("core.tracking")  # the name users configure (core.tracking is the public path)

_MISSING = object()
_WRAPPED_MARK = "_spendboard_tracked"
ClientT = TypeVar("ClientT")
# where a response keeps its usage block, request id and model name (OpenAI and Anthropic first, then Gemini)
USAGE_KEYS = ("usage", "usage_metadata", "usageMetadata")
ID_KEYS = ("id", "response_id", "responseId")
MODEL_KEYS = ("model", "model_version", "modelVersion")


class TrackingError(ValueError):
    """A response that cannot be recorded; the message says which field is missing or wrong."""


@dataclass(frozen=True)
class Usage(UsageFields):
    """The billable figures of one response as the provider reported them, with its id and model name."""

    request_id: str | None = None
    model: str | None = None


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


def _first(obj: object, names: tuple[str, ...]) -> tuple[str, object]:
    for name in names:
        value = _field(obj, name)
        if value is not _MISSING and value is not None:
            return name, value
    return names[0], _MISSING


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_usage(response: object) -> Usage:
    """The usage block, ``id`` and ``model`` of a response (dict or client object) of any shape we know."""
    if response is None:
        raise TrackingError("response: None is not a chat completion; nothing recorded")
    key, block = _first(response, USAGE_KEYS)
    if block is _MISSING:
        raise TrackingError(
            "usage: the response has no usage block (the provider did not report token counts); nothing recorded"
        )
    # only the usage block and the tier the response reports are read: no need to copy the whole answer
    try:
        tier = _field(response, "service_tier")
        fields = normalise_usage({key: block, "service_tier": None if tier is _MISSING else tier})
    except UsageShapeError as exc:
        raise TrackingError(f"{exc}; nothing recorded") from None
    counts = {f.name: getattr(fields, f.name) for f in dataclasses.fields(fields)}
    return Usage(**counts, request_id=_text(_first(response, ID_KEYS)[1]), model=_text(_first(response, MODEL_KEYS)[1]))


def track_completion(
    engine: Engine,
    response: object,
    provider: str,
    *,
    model: str | None = None,
    user: str | None = None,
    project: str | None = None,
    latency_ms: int | None = None,
    tags: object = None,
    hold_id: str | None = None,
) -> TrackedCall:
    """Record one response; ``model`` (what was asked for) wins over the response's model name.

    The requested name is the one the price table is keyed by; providers often answer with a
    dated or routed variant of it (``claude-sonnet-4-5`` answered as ``claude-sonnet-4-5-20250929``).
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
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            web_search_calls=usage.web_search_calls,
            service_tier=usage.service_tier or "standard",
            project=project,
            latency_ms=latency_ms,
            tags=tags,
        )
    except CallError as exc:
        raise TrackingError(f"{exc}; nothing recorded") from None
    if hold_id is not None:
        call = dataclasses.replace(call, hold_id=hold_id)
    return TrackedCall(call, record_usage(engine, call))


@dataclass(frozen=True)
class _Target:
    """Who records: the store, the provider name and who the calls are for."""

    engine: Engine
    provider: str
    user: str | None
    project: str | None
    tags: tuple[str, ...] = ()
    enforce: bool = False


def _record_quietly(
    target: _Target, response: object, model: object, what: str, latency_ms: int, holds: list[str] | None = None
) -> None:
    try:
        track_completion(
            target.engine,
            response,
            target.provider,
            model=model if isinstance(model, str) else None,
            user=target.user,
            project=target.project,
            latency_ms=latency_ms,
            tags=target.tags,
            hold_id=holds[0] if holds else None,
        )
    except Exception:  # a billing hiccup must never break the caller's request
        logger.warning("spendboard: could not record a %s for %s", what, target.provider, exc_info=True)


def _wrap(method: Callable[..., Any], target: _Target, what: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        holds: list[str] = []
        if target.enforce:  # before anything is sent: a denial raises here and the provider is never called
            model = kwargs.get("model")
            outgoing = hooks.Outgoing(
                target.provider,
                model if isinstance(model, str) else None,
                target.user,
                target.project,
                kwargs,
                bool(kwargs.get("stream")),
            )
            holds = hooks.run_before_send(target.engine, outgoing)
        started = time.perf_counter()
        try:
            response = method(*args, **kwargs)
        except BaseException:
            hooks.run_release(target.engine, holds)  # nothing was billed: the hold goes now
            raise
        if kwargs.get("stream"):
            logger.info("spendboard: streaming %ss are not recorded (no usage block until the end)", what)
            return response
        if inspect.isawaitable(response):  # an async client (AsyncOpenAI, AsyncAnthropic): record once awaited
            return _record_when_done(response, target, kwargs.get("model"), what, started, holds)
        latency_ms = round((time.perf_counter() - started) * 1000)
        _record_quietly(target, response, kwargs.get("model"), what, latency_ms, holds)
        return response

    setattr(tracked, _WRAPPED_MARK, True)
    return tracked


async def _record_when_done(
    pending: Awaitable[Any], target: _Target, model: object, what: str, started: float, holds: list[str]
) -> Any:
    try:
        response = await pending
    except BaseException:
        await asyncio.to_thread(hooks.run_release, target.engine, holds)
        raise
    latency_ms = round((time.perf_counter() - started) * 1000)
    # the store is synchronous: write from a worker thread so the caller's event loop is not held
    await asyncio.to_thread(_record_quietly, target, response, model, what, latency_ms, holds)
    return response


# (path to the object, method name, what it makes) for every API we record; ``parse`` (structured
# output) posts by itself rather than through ``create``, so it is wrapped too
ENDPOINTS = (
    (("chat", "completions"), "create", "chat completion"),
    (("chat", "completions"), "parse", "chat completion"),
    (("responses",), "create", "response"),
    (("responses",), "parse", "response"),
    (("messages",), "create", "message"),
    (("messages",), "parse", "message"),
)


def _endpoints(client: object) -> list[tuple[object, str, str]]:
    """The methods of ``client`` to wrap: (owner, method name, what a call makes)."""
    if callable(getattr(client, "chat_completion", None)):
        # huggingface_hub.InferenceClient: its chat.completions.create alias goes through chat_completion
        return [(client, "chat_completion", "chat completion")]
    found: list[tuple[object, str, str]] = []
    for path, name, what in ENDPOINTS:
        owner: object = client
        for step in path:
            owner = getattr(owner, step, None)
        if callable(getattr(owner, name, None)):
            found.append((owner, name, what))
    return found


def track(
    client: ClientT,
    engine: Engine,
    provider: str,
    *,
    user: str | None = None,
    project: str | None = None,
    tags: object = None,
    enforce: bool = False,
) -> ClientT:
    """Record every non-streaming call ``client`` makes; returns the same client.

    Duck-typed: an ``openai.OpenAI``-style client (``client.chat.completions.create`` and
    ``client.responses.create``), an ``anthropic.Anthropic`` client (``client.messages.create``),
    or a ``huggingface_hub.InferenceClient`` (``client.chat_completion``, which its
    ``chat.completions.create`` alias also goes through); their async variants are recorded when
    the caller awaits the answer. Streams are passed through and not recorded (logged). What the
    caller gets back is unchanged,
    and a call the store cannot record is logged, never raised. A copy made by
    ``client.with_options(...)`` is a new client: track it too. ``tags`` (a list of strings,
    ``["feature:summarize", "env:prod"]``) go on every call it records.

    ``enforce=True``: before each request the enforced budgets are checked (the check
    ``core.tracking`` registers), the estimate held until the response is recorded; a denial
    raises ``SpendLimitExceeded`` and the provider is never called. On SQLite it also starts
    ``core.storage.checkpoint``'s thread for ``engine``, so the reserves' commits stay short.
    """
    try:  # the names and tags are checked now, by the rules every recorded call follows
        checked = make_call(provider, "model", 0, 0, user=user, project=project, tags=tags)
    except CallError as exc:
        raise TrackingError(str(exc)) from None
    endpoints = _endpoints(client)
    if not endpoints:
        raise TrackingError(
            f"client: {type(client).__name__} has neither chat.completions.create, responses.create, "
            "messages.create nor chat_completion"
        )
    target = _Target(engine, provider, user, project, checked.tags, enforce)
    if enforce:  # a reserve before every request: on SQLite, no commit of it copies the WAL (a background thread)
        start_checkpointer(engine)
    for owner, name, what in endpoints:
        method = getattr(owner, name)
        if not getattr(method, _WRAPPED_MARK, False):
            setattr(owner, name, _wrap(method, target, what))
    return client
