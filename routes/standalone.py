"""The ingestion routes alone, as one Starlette app: what ``python -m core serve`` runs under uvicorn."""

from starlette.applications import Starlette

from routes import ingest

app = Starlette(routes=ingest.ROUTES)
