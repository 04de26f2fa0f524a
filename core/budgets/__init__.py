"""Budgets and alerts: per period and scope, one signed webhook per threshold crossed.

``periods`` turns a budget's calendar period into a UTC range, ``spend`` sums what is
stored, ``detect`` writes crossings to the outbox (``core.notify`` signs and sends them),
``service`` holds the use cases the CLI and the Budgets page call, ``worker`` runs detection
and delivery in the server. The tables are in ``core.storage.budget_tables``.

Importing this package registers budget detection on ``core.recording.hooks``, so every
recorded call marks the budget periods it touches.
"""

from core.budgets import detect as _detect
from core.recording import hooks as _hooks

_hooks.after_commit(_detect.on_recorded)
