"""The OpenAPI document kept true: schemathesis drives every route the server serves, from the document.

``routes.standalone:app`` runs under uvicorn in a subprocess on a SQLite database with demo calls, a
budget and one ``all`` key. For each operation schemathesis sends a bounded number of generated
requests (valid and invalid) and checks each answer: no 5xx, a status code the document lists, the
content type and body schema it documents. The whole run stays well under a minute.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from streamlit_server import free_port, isolated_cwd, isolated_env

from core.ingest.keys import create_key
from core.pricing.seeding import initialize_default_pricing
from core.recording.demo import load_demo
from core.storage.engine import make_engine
from core.storage.migrate import upgrade_database
from routes.ingest import post_only
from routes.openapi_doc import openapi_document
from routes.standalone import app

# operations served (a 405 answer naming the method a path takes is not an operation)
SERVED = {
    (method.lower(), route.path)  # type: ignore[attr-defined]
    for route in app.routes
    if getattr(route, "endpoint", None) is not post_only
    for method in (route.methods or ())  # type: ignore[attr-defined]
    if method != "HEAD"
}


def served_document() -> dict:
    """The document, less operations this server does not serve yet (``POST /api/v1/check`` comes with limits)."""
    doc = openapi_document()
    for path in list(doc["paths"]):
        for method in list(doc["paths"][path]):
            if (method, path) not in SERVED:
                del doc["paths"][path][method]
        if not doc["paths"][path]:
            del doc["paths"][path]
    return doc


SCHEMA = schemathesis.openapi.from_dict(served_document())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class Server:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'spendboard.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    initialize_default_pricing(engine)
    load_demo(engine, days=20, rows=2000)
    key = create_key(engine, "schemathesis", scope="all").key
    engine.dispose()
    port = free_port()
    env = isolated_env({"DATABASE_URL": url})
    log = (folder / "uvicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "routes.standalone:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=isolated_cwd(folder / "cwd"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (folder / "uvicorn.log").read_text()
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    try:
        yield Server(base, key)
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_every_served_route_is_in_the_document() -> None:
    documented = {(method, path) for path, item in openapi_document()["paths"].items() for method in item}
    assert SERVED <= documented, SERVED - documented
    assert {("get", "/api/v1/spend"), ("get", "/metrics"), ("get", "/api/v1/openapi.json")} <= SERVED


def test_the_served_document_is_the_one_in_routes(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10).json() == openapi_document()


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_answers_stay_inside_the_document(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, headers=server.headers, checks=CHECKS, timeout=30)
