"""Budgets as ``/metrics`` shows them: spend and amount of each budget's current period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from core.budgets.service import list_status
from core.reporting.metrics import BudgetFigure


def budget_figures(engine: Engine, now: datetime | None = None) -> list[BudgetFigure]:
    """One figure per budget (by name), from the same status the Budgets page and ``budgets list`` show."""
    return [BudgetFigure(s.budget.name, s.spend, s.budget.amount) for s in list_status(engine, now)]
