"""The web server: the Streamlit app (``app.py``), a streamed CSV export of the usage log, and the
ingestion routes of ``routes/ingest.py`` (JSON API, OTLP traces, LiteLLM callback) and the read
routes of ``routes/read.py`` (spend totals, Prometheus metrics, the OpenAPI document).

``streamlit run server.py`` serves them all on one port. Streamlit's download button keeps a file's
bytes in memory; this route streams the export in keyset batches instead, so a
download of millions of calls holds one batch at a time.
"""

import streamlit as st
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import ConfigError
from core.reporting.logs import EXPORT_PATH, LogFilterError, csv_chunks, filter_from_query
from core.storage.engine import CONNECTION_ERRORS, database_error
from routes import check, ingest, read
from ui.navigation import canonical_path


async def export_usage_csv(request: Request) -> Response:
    """The usage log as CSV, filtered by the query string the Usage logs page builds."""
    from ui.common import get_engine

    try:
        flt = filter_from_query(dict(request.query_params))
        engine = get_engine()
    except (LogFilterError, ConfigError) as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    except CONNECTION_ERRORS as exc:
        return PlainTextResponse(f"{database_error(exc)}\n", status_code=503)  # type: ignore[arg-type]
    headers = {"Content-Disposition": 'attachment; filename="spendboard_usage.csv"'}
    # a sync iterator: Starlette runs it in a worker thread, chunk by chunk
    return StreamingResponse(csv_chunks(engine, flt), media_type="text/csv", headers=headers)



class LowerCasePages:
    """ASGI middleware: a page address typed in another case (``/Calculator``) is sent to the page's own (308)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = canonical_path(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        await RedirectResponse(target + (f"?{query}" if query else ""), status_code=308)(scope, receive, send)


app = st.App(
    "app.py",
    routes=[Route(EXPORT_PATH, export_usage_csv), *ingest.ROUTES, *read.ROUTES, *check.ROUTES],
    middleware=[Middleware(LowerCasePages)],
)
