"""What each index on api_usage_logs costs a large log in random time order (issue 11).

Copies the 1M-call / 10,000-user database bench_cardinality.py built (run it first), then
inserts 100,000 of its own rows (random order, new request ids) with raw ``sqlite3``
``executemany``, 20,000 per transaction, once per index set: the release-2 set before
migration 0006, and today's. Printed: rows/s and the ratio to the first set.
"""

from __future__ import annotations

import random
import shutil
import sqlite3

from common import OUT, executemany_rate, figure

SOURCE = OUT / "card_r2_1m_10000u.db"
TARGET = OUT / "log_indexes.db"
ROWS = 100_000
BEFORE_0006 = {
    "ix_usage_time": "(timestamp, id)",
    "ix_usage_provider_time": "(provider, timestamp, id)",
    "ix_usage_model_time": "(model, timestamp, id)",
    "ix_usage_user_time": "(user_id, timestamp, id)",
    "ix_usage_matched_time": "(matched_by, timestamp, id)",
    "ix_usage_project_time": "(project, timestamp, id)",
}
TODAY = {
    "ix_usage_time": "(timestamp, id, user_id, project, cost_total)",
    "ix_usage_model_time": "(model, timestamp, id)",
    "ix_usage_user_time": "(user_id, timestamp, id)",
    "ix_usage_project_time": "(project, timestamp, id)",
    "ix_usage_unexact_time": "(matched_by, timestamp, id) WHERE matched_by <> 'exact'",
}
SETS = {
    "indexes before migration 0006": BEFORE_0006,
    "today's indexes (0006-0008)": TODAY,
    "time index only": {"ix_usage_time": "(timestamp, id)"},
}


def main() -> None:
    if not SOURCE.exists():
        print(f"  skipped: {SOURCE} is missing (run bench_cardinality.py first)")
        return
    first = None
    for label, indexes in SETS.items():
        for suffix in ("", "-wal", "-shm"):
            TARGET.with_name(TARGET.name + suffix).unlink(missing_ok=True)
        shutil.copyfile(SOURCE, TARGET)
        db = sqlite3.connect(TARGET, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA cache_size = -262144")
        existing = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'api_usage_logs' AND sql IS NOT NULL"
            )
        ]
        for name in existing:
            db.execute(f"DROP INDEX {name}")
        for name, columns in indexes.items():
            db.execute(f"CREATE INDEX {name} ON api_usage_logs {columns}")
        columns = [r[1] for r in db.execute("PRAGMA table_info(api_usage_logs)") if r[1] != "id"]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM api_usage_logs LIMIT {ROWS}").fetchall()  # noqa: S608
        random.Random(7).shuffle(rows)
        at = columns.index("request_id")
        rows = [row[:at] + (f"idx-{n}",) + row[at + 1 :] for n, row in enumerate(rows)]
        statement = f"INSERT INTO api_usage_logs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
        rate = executemany_rate(db, statement, rows)
        first = first or rate
        figure(f"raw executemany into the 1M log, {label}", rate, "rows/s", "the first set", rate / first)
        db.close()
    for suffix in ("", "-wal", "-shm"):
        TARGET.with_name(TARGET.name + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
