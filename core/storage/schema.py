"""Every table of Spendboard on one metadata: the one list of table modules.

A capability's tables live in a module of their own here (``budget_tables``, ``key_tables``);
a new module is added to this import so ``create_all`` and Alembic's autogenerate see it.
"""

from __future__ import annotations

from core.storage import budget_tables, key_tables, limit_tables, tables

metadata = tables.Base.metadata
TABLE_MODULES = (tables, budget_tables, key_tables, limit_tables)
