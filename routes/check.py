"""``POST /api/v1/check`` (DESIGN.md, "Spend limits enforced before the call"): thin over ``core.limits``.

An API key as the ingestion routes take it. A denial is an answer (200, ``"allowed": false``);
bad input is 400 naming the field, a reserve for a request id already recorded 409; nothing held.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.ingest.body import BodyError
from core.limits import service
from core.storage.engine import DatabaseBusyError
from routes.ingest import OTHER_METHODS, _authenticate, _body, _json, _Refused, post_only

CHECK_PATH = "/api/v1/check"


async def check(request: Request) -> Response:
    try:
        engine, _key = await _authenticate(request, "check")
        body = await _body(request)

        def work() -> service.Decision:
            return service.decide(engine, service.parse_request_json(engine, body))

        decision = await run_in_threadpool(work)
    except _Refused as exc:
        return _json({"error": str(exc)}, exc.status, exc.headers)
    except BodyError as exc:
        return _json({"error": str(exc)}, exc.status)
    except service.RecordedAlready as exc:
        return _json({"error": str(exc)}, 409)
    except service.LimitError as exc:
        return _json({"error": str(exc)}, 400)
    except DatabaseBusyError as exc:
        return _json({"error": str(exc)}, 503, {"Retry-After": "1"})
    return _json(decision.as_json())


ROUTES = [Route(CHECK_PATH, check, methods=["POST"]), Route(CHECK_PATH, post_only, methods=OTHER_METHODS)]
