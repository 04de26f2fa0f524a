"""Issue 19, point 16: the database and its folder are private to the user running Spendboard."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from core.storage.engine import make_engine
from core.storage.migrate import create_tables


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_data_folder_is_0700_and_every_database_file_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which made data/ 0755 and the database 0644
    try:
        engine = make_engine()  # DATABASE_URL unset: data/spendboard.db under the working folder (tmp_path)
        try:
            create_tables(engine)
            with engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM spendboard_settings"))
                data = tmp_path / "data"
                files = sorted(data.iterdir())
                assert {f.name for f in files} >= {"spendboard.db", "spendboard.db-wal", "spendboard.db-shm"}
                assert mode(data) == 0o700
                assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            engine.dispose()
    finally:
        os.umask(old)


def test_a_database_anywhere_is_created_0600(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        target = tmp_path / "deep" / "er" / "billing.db"
        engine = make_engine(f"sqlite:///{target}")
        create_tables(engine)
        engine.dispose()
    finally:
        os.umask(old)
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700 and mode(target.parent.parent) == 0o700
