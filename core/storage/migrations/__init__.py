"""Schema migrations (Alembic), shipped inside the package so users need no alembic.ini.

``alembic_config()`` builds the configuration in code; ``core.storage.migrate.upgrade_database``
runs it. A new revision for developers (after changing a table module of ``core/storage``)::

    from alembic import command
    from core.storage.migrations import alembic_config
    command.revision(alembic_config(), message="what it changes", rev_id="0005_name", autogenerate=True)

(autogenerate compares the models with ``DATABASE_URL``; check and trim what it writes).
Alembic is imported only when needed: it costs ~0.1 s, and every command checks the schema.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import MetaData

HERE = Path(__file__).resolve().parent
RELEASE1 = "0001_release1"  # the schema every release-1 database has (made by create_all)


def alembic_config() -> Config:
    """A configuration pointing at this folder; no file, no logging setup of its own."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("file_template", "%%(rev)s")
    return config


def all_tables() -> MetaData:
    """Every table of the code on one metadata (``core.storage.schema`` lists the table modules)."""
    from core.storage.schema import metadata

    return metadata


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


@lru_cache(maxsize=1)
def newest_revision() -> str | None:
    """The head, read from the revision files without importing Alembic (the every-command check).

    ``None`` when it is not one plain revision; callers then ask Alembic itself. A test
    holds it equal to Alembic's head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (HERE / "versions").glob("*.py"):
        for name, value in _module_constants(path, ("revision", "down_revision")):
            ids = [value] if isinstance(value, str) else list(value or ())  # type: ignore[call-overload]
            (revisions if name == "revision" else parents).update(str(i) for i in ids)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _module_constants(path: Path, names: tuple[str, ...]) -> list[tuple[str, object]]:
    """Top-level ``name = literal`` (or ``name: type = literal``) assignments of a file."""
    found: list[tuple[str, object]] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found.append((target.id, ast.literal_eval(value)))
    return found
