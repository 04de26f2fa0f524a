"""The HTTP API alone (ingestion and read routes) as one Starlette app: what ``python -m core serve`` runs.

Each worker process also runs the budget loop (reconcile, deliver due alerts), as the dashboard does,
so an API-only deployment still sends its alerts; the outbox keeps them exactly-once across workers;
and, on SQLite, checkpoints the WAL in the background (``core.storage.checkpoint``).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from routes import check, ingest, read


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    from core.budgets.worker import start_worker
    from core.storage.checkpoint import start_checkpointer

    engine = ingest.get_engine()
    start_worker(engine)
    start_checkpointer(engine)  # SQLite: the WAL copied into the database off the requests' time
    yield


app = Starlette(routes=[*ingest.ROUTES, *read.ROUTES, *check.ROUTES], lifespan=lifespan)
