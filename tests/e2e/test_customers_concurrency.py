"""Four processes add the same customer name at once: exactly one is stored, the others are refused
naming ``--name`` (the unique name decides, on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from core.customers import service

REPO = Path(__file__).resolve().parents[2]


def test_same_name_from_four_processes_is_stored_once(db_url: str, engine: Engine, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "core", "customers", "add", "--name", "acme", "--match", f"project:p{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [(w.wait(timeout=120), w.stdout.read(), w.stderr.read()) for w in workers]  # type: ignore[union-attr]
    assert sorted(code for code, _out, _err in results) == [0, 2, 2, 2], results
    for code, _out, err in results:
        if code == 2:
            assert err.strip() == "error: --name: 'acme' is already a customer"
    (stored,) = service.list_customers(engine)
    assert stored.name == "acme" and stored.match_kind == "project"
