"""Enforced budgets: may this user spend this, asked before the call (DESIGN.md, "Spend limits").

``service`` holds the check (one read), the hold (one write under the counters' locks) and the
input rules; ``store`` the counter rows and holds; ``enforce`` what ``track(enforce=True)`` runs
before a request is sent. Importing this package registers, on ``core.recording.hooks``, the
work recording does inside its transaction: add each call's cost to the counters it falls in
and settle the hold of its request id; and, on the server's loop, the sweep of expired holds.
"""

from __future__ import annotations

import core.budgets  # noqa: F401 - budget detection is registered with the limits
from core.budgets import worker as _worker
from core.limits import enforce as _enforce
from core.limits import recorded as _recorded
from core.limits import service as _service
from core.recording import hooks as _hooks

_hooks.in_transaction(_recorded.on_recorded)
_hooks.before_send(_enforce.before_send, _enforce.release)
_worker.every_tick(_service.sweep_expired_holds)
