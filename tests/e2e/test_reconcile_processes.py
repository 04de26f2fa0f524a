"""Several ``reconcile fetch`` processes of one provider at once, on SQLite and PostgreSQL: each stores
the whole report in one transaction, so they take turns and the days end stored once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from admin_api_stub import AdminApiStub, openai_cost, openai_usage
from sqlalchemy import Engine, func, select
from streamlit_server import isolated_cwd, isolated_env

from core.reconcile.report import reconcile
from core.storage import schema  # noqa: F401 - every table on the metadata the session schema is made from
from core.storage.reconcile_tables import BilledCost, BilledUsage, ReconciledDay

PROCESSES = 5


def test_concurrent_fetches_of_one_provider_store_each_day_once(engine: Engine, db_url: str, tmp_path: Path) -> None:
    days = {date(2026, 11, n): [openai_cost("gpt-4o-2024-08-06, output", f"{n}.25")] for n in range(1, 11)}
    usage = {date(2026, 11, n): [openai_usage("gpt-4o-2024-08-06", 10 * n, n)] for n in range(1, 11)}
    with AdminApiStub(openai_costs=days, openai_usage=usage) as stub:
        env = isolated_env(
            {"DATABASE_URL": db_url, "OPENAI_ADMIN_KEY": stub.openai_key, "OPENAI_ADMIN_BASE_URL": stub.openai_url}
        )
        argv = [sys.executable, "-m", "core", "reconcile", "fetch", "--provider", "openai"]
        argv += ["--since", "2026-11-01", "--until", "2026-11-11", "--json"]
        running = [
            subprocess.Popen(
                argv,
                cwd=isolated_cwd(tmp_path / f"p{i}"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(PROCESSES)
        ]
        finished = [process.communicate(timeout=180) for process in running]
    assert [p.returncode for p in running] == [0] * PROCESSES, [err for _out, err in finished]
    for out, _err in finished:
        assert json.loads(out) == {
            "provider": "openai",
            "days": 10,
            "lines": 10,
            "billed_total": "57.5",
        }  # 1.25 + ... + 10.25
    with engine.connect() as conn:
        counts = [
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (BilledCost, BilledUsage, ReconciledDay)
        ]
    assert counts == [10, 10, 10]
    assert reconcile(engine, provider="openai").totals.billed == Decimal("57.5")
