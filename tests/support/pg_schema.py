"""A PostgreSQL schema of its own for one test (``TEST_DATABASE_URL``'s server), dropped afterwards: what a
migration test needs to build a database of an older revision beside the session's schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@contextmanager
def own_schema(prefix: str) -> Iterator[str]:
    """The URL of a new schema named ``prefix_<random>`` (search_path set), dropped with everything in it."""
    assert PG_URL is not None, "needs TEST_DATABASE_URL"
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
