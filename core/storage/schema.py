"""Every table of Spendboard on one metadata: the one list of table modules.

A capability's tables live in a module of their own here (``budget_tables``, ``key_tables``);
a new module is added to this import so ``create_all`` and Alembic's autogenerate see it.
"""

from __future__ import annotations

from core.storage import (
    anomaly_tables,
    budget_tables,
    customer_tables,
    key_tables,
    limit_tables,
    reconcile_tables,
    tables,
    tag_tables,
)

metadata = tables.Base.metadata
TABLE_MODULES = (
    tables,
    budget_tables,
    key_tables,
    tag_tables,
    customer_tables,
    reconcile_tables,
    anomaly_tables,
    limit_tables,
)
