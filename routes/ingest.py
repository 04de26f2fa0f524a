"""Ingestion routes (DESIGN.md, "Network ingestion"): the JSON API, OTLP/HTTP traces and LiteLLM's callback.

Thin: authenticate, read the body in bounded memory, hand it to ``core.ingest``,
answer. Database work and parsing run in Starlette's thread pool. A call is
acknowledged only once its transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import core.limits  # noqa: F401 - registers budget detection and enforced-budget counters on recording
from core.config import ConfigError, database_url
from core.ingest import otlp
from core.ingest.body import BodyError, BodyReader
from core.ingest.calls import PayloadError, parse_calls
from core.ingest.keys import KeyInfo, ScopeError, authenticate, parse_bearer, require_scope
from core.ingest.limits import MAX_REFUSALS_LISTED
from core.ingest.litellm import parse_litellm
from core.ingest.record import IngestResult, Parsed, record_parsed
from core.storage.engine import (
    CONNECTION_ERRORS,
    DatabaseBusyError,
    DatabaseSchemaError,
    database_error,
    make_engine,
)
from core.storage.migrate import upgrade_database
from routes import server_limits

log = logging.getLogger(__name__)
CALLS_PATH = "/api/v1/calls"
TRACES_PATH = "/v1/traces"
LITELLM_PATH = "/api/v1/litellm"
HEALTH_PATH = "/api/v1/health"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine() -> Engine:
    """One engine per database URL for the process, its schema upgraded once."""
    url = database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            upgrade_database(engine)  # as every command and the dashboard do: the schema of this code
            _engines[url] = engine
        return engine


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


UNAVAILABLE_SECONDS = "5"


def _unavailable(exc: Exception) -> _Refused:
    """The database is down, unreachable or locked: 503 with Retry-After, which exporters and clients retry."""
    if isinstance(exc, DatabaseBusyError):
        return _Refused(503, str(exc), {"Retry-After": "1"})
    log.warning("ingestion answered 503: %s", database_error(exc))  # the server log names the database
    return _Refused(
        503, "the database is unavailable; nothing was written, try again", {"Retry-After": UNAVAILABLE_SECONDS}
    )


async def _authenticate(request: Request, scope: str = "ingest") -> tuple[Engine, KeyInfo]:
    """The engine and the request's key; 401 without a good key, 403 when its scope does not cover ``scope``."""
    try:
        engine = await run_in_threadpool(get_engine)
    except (ConfigError, DatabaseSchemaError) as exc:
        raise _Refused(500, f"server configuration: {exc}") from None
    except CONNECTION_ERRORS as exc:
        raise _unavailable(exc) from None
    token = parse_bearer(request.headers.get("authorization"))
    if token is None:
        raise _Refused(401, "missing API key: send 'Authorization: Bearer KEY'", {"WWW-Authenticate": "Bearer"})
    try:
        key = await run_in_threadpool(authenticate, engine, token)
    except CONNECTION_ERRORS as exc:
        raise _unavailable(exc) from None
    if key is None:
        raise _Refused(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    try:
        require_scope(key, scope)
    except ScopeError as exc:
        raise _Refused(403, str(exc)) from None
    return engine, key


DRAIN_LIMIT = 64 * 1024 * 1024


async def _body(request: Request) -> bytes:
    """The decoded body; on a refusal the rest is read and dropped (up to a bound) so the client gets the answer."""
    reader = BodyReader(request.headers.get("content-encoding"))
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > DRAIN_LIMIT:
        raise BodyError(413, f"the body is over the limit of {reader.limit:,} bytes")
    stream = request.stream()
    try:
        async with asyncio.timeout(server_limits.BODY_TIMEOUT_SECONDS):  # the whole body, not per read
            async for chunk in stream:
                reader.feed(chunk)
    except TimeoutError:
        raise BodyError(408, f"the body did not arrive within {server_limits.BODY_TIMEOUT_SECONDS:g} s") from None
    except BodyError:
        drained = 0
        async for chunk in stream:
            drained += len(chunk)
            if drained > DRAIN_LIMIT:
                break
        raise
    return reader.finish()


def _summary(result: IngestResult) -> dict[str, object]:
    """The answer: counts, and the first ``MAX_REFUSALS_LISTED`` refusals (``refused_total`` counts them all)."""
    listed = result.refused[:MAX_REFUSALS_LISTED]
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "refused": [{"index": index, "error": error} for index, error in listed],
        "refused_total": len(result.refused),
    }


async def _json_route(request: Request, route: str, parse: Callable[[bytes, str | None], Parsed]) -> Response:
    try:
        engine, key = await _authenticate(request)
        body = await _body(request)

        def work() -> IngestResult:
            if route == CALLS_PATH:  # ids derived for calls without one are the sending key's own
                parsed = parse_calls(body, key.project, sender=f"key-{key.id}")
            else:
                parsed = parse(body, key.project)
            return record_parsed(engine, route, key.name, parsed)

        result = await run_in_threadpool(work)
    except _Refused as exc:
        return _json({"error": str(exc)}, exc.status, exc.headers)
    except (BodyError, PayloadError) as exc:
        return _json({"error": str(exc)}, getattr(exc, "status", 400))
    except (DatabaseBusyError, *CONNECTION_ERRORS) as exc:
        refused = _unavailable(exc)
        return _json({"error": str(refused)}, refused.status, refused.headers)
    return _json(_summary(result))


async def ingest_calls(request: Request) -> Response:
    """``POST /api/v1/calls``: a call, an array of calls, or ``{"calls": [...]}``."""
    return await _json_route(request, CALLS_PATH, parse_calls)


async def ingest_litellm(request: Request) -> Response:
    """``POST /api/v1/litellm``: LiteLLM's generic_api callback (array, NDJSON or one payload)."""
    return await _json_route(request, LITELLM_PATH, parse_litellm)


async def ingest_traces(request: Request) -> Response:
    """``POST /v1/traces``: OTLP/HTTP, protobuf or JSON; answers as the OTLP specification says."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    json_body = content_type == otlp.JSON
    # a client that does not speak OTLP protobuf (curl, a wrong content type) gets its answer in JSON
    answer_json = content_type != otlp.PROTOBUF
    media = otlp.JSON if answer_json else otlp.PROTOBUF

    def status(code: int, http_status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(otlp.encode_status(code, message, answer_json), http_status, headers, media_type=media)

    try:
        engine, key = await _authenticate(request)
        if content_type not in (otlp.JSON, otlp.PROTOBUF):
            return status(
                3, 415, f"Content-Type {content_type or '(none)'!r} is not OTLP: use {otlp.PROTOBUF} or {otlp.JSON}"
            )
        body = await _body(request)

        def work() -> IngestResult:
            parsed = otlp.parse_traces(otlp.decode_request(body, json_body), key.project)
            return record_parsed(engine, TRACES_PATH, key.name, parsed)

        result = await run_in_threadpool(work)
    except _Refused as exc:
        code = {401: 16, 403: 7, 503: 14}.get(exc.status, 13)  # UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE
        return status(code, exc.status, str(exc), exc.headers)
    except BodyError as exc:
        return status(3, exc.status, str(exc))
    except PayloadError as exc:
        return status(3, 400, str(exc))
    except (DatabaseBusyError, *CONNECTION_ERRORS) as exc:
        refused = _unavailable(exc)
        return status(14, 503, str(refused), refused.headers)
    errors = [error for _, error in result.refused]
    return Response(otlp.encode_response(len(errors), errors, json_body), 200, media_type=media)


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


OTHER_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE"]


async def post_only(request: Request) -> Response:
    """Another method on a POST route: 405 naming the one it takes (not the dashboard's page, as a GET was)."""
    return _json({"error": f"{request.method} is not allowed here: send a POST"}, 405, {"Allow": "POST"})


ROUTES = [
    Route(CALLS_PATH, ingest_calls, methods=["POST"]),
    Route(TRACES_PATH, ingest_traces, methods=["POST"]),
    Route(LITELLM_PATH, ingest_litellm, methods=["POST"]),
    *(Route(path, post_only, methods=OTHER_METHODS) for path in (CALLS_PATH, TRACES_PATH, LITELLM_PATH)),
    Route(HEALTH_PATH, health, methods=["GET"]),
]
