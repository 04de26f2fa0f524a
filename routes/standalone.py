"""The HTTP API alone (ingestion and read routes) as one Starlette app: what ``python -m core serve`` runs.

Each worker process also runs the budget loop (reconcile, deliver due alerts), as the dashboard does,
so an API-only deployment still sends its alerts; the outbox keeps them exactly-once across workers.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from routes import check, ingest, read


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    from core.budgets.worker import start_worker

    start_worker(ingest.get_engine())
    yield


app = Starlette(routes=[*ingest.ROUTES, *read.ROUTES, *check.ROUTES], lifespan=lifespan)
