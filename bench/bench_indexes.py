"""What each index on api_usage_logs costs: raw sqlite3 executemany of the same stored rows, by index set.

Reads the rows bench_ingest.py stored (bench/out/ingest_record_batch.db); run that first.
"""

from __future__ import annotations

import sqlite3

from common import OUT, executemany_rate, figure

SOURCE = OUT / "ingest_record_batch.db"
TARGET = OUT / "indexes.db"
SETS = {
    "every index of the log": ["ix_usage_"],
    "time and model indexes": ["ix_usage_time", "ix_usage_model_time"],
    "time index only": ["ix_usage_time"],
    "no secondary index": [],
}


def main() -> None:
    if not SOURCE.exists():
        print(f"  skipped: {SOURCE} is missing (run bench_ingest.py first)")
        return
    source = sqlite3.connect(SOURCE)
    columns = [r[1] for r in source.execute("PRAGMA table_info(api_usage_logs)") if r[1] != "id"]
    rows = source.execute(f"SELECT {', '.join(columns)} FROM api_usage_logs").fetchall()  # noqa: S608
    schema = [r[0] for r in source.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")]
    indexes = [
        r[0]
        for r in source.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'api_usage_logs' AND type = 'index' AND sql IS NOT NULL"
        )
    ]
    source.close()
    statement = f"INSERT INTO api_usage_logs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    first = None
    for label, keep in SETS.items():
        for suffix in ("", "-wal", "-shm"):
            TARGET.with_name(TARGET.name + suffix).unlink(missing_ok=True)
        target = sqlite3.connect(TARGET, isolation_level=None)
        target.execute("PRAGMA journal_mode = WAL")
        target.execute("PRAGMA synchronous = NORMAL")
        for sql in schema:
            target.execute(sql)
        for sql in indexes:
            if any(name in sql for name in keep):
                target.execute(sql)
        rate = executemany_rate(target, statement, rows)
        target.close()
        first = first or rate
        figure(f"raw executemany, {label}", rate, "rows/s", "all indexes", rate / first)


if __name__ == "__main__":
    main()
