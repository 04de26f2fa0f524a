"""The read API (DESIGN.md, "Figures for other tools"): spend totals, Prometheus metrics, the OpenAPI document.

Thin like the ingestion routes: authenticate (a ``read`` or ``all`` key), parse the query
string, call ``core``, answer. ``GET /api/v1/spend`` answers with the very function
``report --json`` prints (``core.reporting.spend.spend_json``). ``GET /metrics`` composes
the usage figures (``core.reporting``) and the budgets' (``core.budgets``) here, since
reporting may not import budgets.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.budgets.figures import budget_figures
from core.config import ConfigError
from core.reporting.metrics import Figures, render
from core.reporting.spend import FILTERS, SpendArgumentError, parse_spend_query, spend_json
from core.reporting.usage_figures import usage_figures
from core.storage.engine import CONNECTION_ERRORS, DatabaseBusyError
from routes.ingest import _authenticate, _json, _Refused
from routes.openapi_doc import METRICS_PATH, OPENAPI_PATH, SPEND_PATH, openapi_document

SPEND_ARGUMENTS = frozenset({"since", "until", "by", "tz", "tag", *FILTERS})


def _query(request: Request) -> dict[str, object]:
    """The spend arguments; an unknown or repeated one is refused by name."""
    params = request.query_params
    for name in params:
        if name not in SPEND_ARGUMENTS:
            raise SpendArgumentError(f"{name}: unknown argument (known: {', '.join(sorted(SPEND_ARGUMENTS))})")
    single: dict[str, str | None] = {}
    for name in SPEND_ARGUMENTS - {"tag"}:
        values = params.getlist(name)
        if len(values) > 1:
            raise SpendArgumentError(f"{name}: given {len(values)} times; give it once")
        single[name] = values[0] if values else None
    return {
        "since": single["since"],
        "until": single["until"],
        "by": single["by"],
        "tz": single["tz"],
        "filters": {name: single[name] for name in FILTERS},
        "tags": params.getlist("tag"),
    }


async def _guarded(request: Request, work) -> Response:  # type: ignore[no-untyped-def]
    """Authenticate for ``read``, run ``work(engine)``; refusals and bad input as JSON errors, never a 500."""
    try:
        engine, _key = await _authenticate(request, "read")
        return await run_in_threadpool(work, engine)
    except _Refused as exc:
        return _json({"error": str(exc)}, exc.status, exc.headers)
    except SpendArgumentError as exc:
        return _json({"error": str(exc)}, 400)
    except DatabaseBusyError as exc:
        return _json({"error": str(exc)}, 503, {"Retry-After": "1"})
    except (ConfigError, *CONNECTION_ERRORS) as exc:
        return _json({"error": f"database unavailable: {exc.__class__.__name__}"}, 503, {"Retry-After": "5"})


async def spend(request: Request) -> Response:
    """``GET /api/v1/spend``: what ``report --json`` prints for the same arguments (a key is checked first)."""

    def work(engine):  # type: ignore[no-untyped-def]
        query = parse_spend_query(**_query(request))  # type: ignore[arg-type]
        return _json(spend_json(engine, query))

    return await _guarded(request, work)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text (OpenMetrics when asked), made by prometheus_client."""
    accept = request.headers.get("accept")

    def work(engine):  # type: ignore[no-untyped-def]
        usage, unpriced = usage_figures(engine)
        body, content_type = render(Figures(usage, unpriced, budget_figures(engine)), accept)
        return Response(body, 200, headers={"Content-Type": content_type})

    return await _guarded(request, work)


async def openapi(request: Request) -> Response:
    """``GET /api/v1/openapi.json``: no key needed."""
    return _json(openapi_document())


ROUTES = [
    Route(SPEND_PATH, spend, methods=["GET"]),
    Route(METRICS_PATH, metrics, methods=["GET"]),
    Route(OPENAPI_PATH, openapi, methods=["GET"]),
]
