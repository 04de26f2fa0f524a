"""Schema migrations (Alembic), shipped inside the package so users need no alembic.ini.

``alembic_config()`` builds the configuration in code; ``core.db.upgrade_database``
runs it. A new revision for developers (after changing ``core/models.py``)::

    from alembic import command
    from core.migrations import alembic_config
    command.revision(alembic_config(), message="what it changes", rev_id="0005_name", autogenerate=True)

(autogenerate compares the models with ``DATABASE_URL``; check and trim what it writes).
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

HERE = Path(__file__).resolve().parent
RELEASE1 = "0001_release1"  # the schema every release-1 database has (made by create_all)


def alembic_config() -> Config:
    """A configuration pointing at this folder; no file, no logging setup of its own."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("file_template", "%%(rev)s")
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())
