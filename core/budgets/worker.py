"""The running server's budget loop: reconcile what changed, judge the hours due for anomalies, post what is due,
and the upkeep packages above register (``every_tick``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from core.anomalies import service as anomalies
from core.budgets import detect
from core.notify import delivery
from core.storage.background import OncePerDatabase

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 5.0  # due events go out within 10 s
Chore = Callable[[Engine], object]
_chores: list[Chore] = []


def every_tick(chore: Chore) -> Chore:
    """Register upkeep of a package above this one (``core.limits`` sweeps expired holds), run on each tick."""
    if chore not in _chores:
        _chores.append(chore)
    return chore


def tick(engine: Engine, mark: detect.Watermark) -> None:
    if detect.cached_budgets(engine):
        detect.reconcile_changes(engine, mark)
    anomalies.run_pass(engine)  # a few reads unless an hour just ended or calls landed in a judged one
    delivery.deliver_due(engine)
    for chore in _chores:
        chore(engine)


def _loop(engine: Engine, stop: threading.Event, interval: float) -> None:
    mark = detect.Watermark()
    while not stop.is_set():
        try:
            tick(engine, mark)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database hiccup
            log.warning("budget check failed, trying again in %.0f s: %s", interval, exc)
        stop.wait(interval)


_threads = OncePerDatabase("spendboard-budgets", _loop)


def start_worker(engine: Engine, interval: float = INTERVAL_SECONDS) -> threading.Thread | None:
    """Start the loop once per process and database (``SPENDBOARD_BUDGET_WORKER=0`` turns it off)."""
    if os.environ.get("SPENDBOARD_BUDGET_WORKER", "1").strip() in ("0", "false", "no", "off"):
        return None
    return _threads.start(engine, interval)


def stop_worker(engine: Engine, timeout: float = 10.0) -> None:
    """Stop the loop for this database (tests; a server simply exits)."""
    _threads.stop(engine, timeout)


def stop_all_workers(timeout: float = 10.0) -> None:
    """Stop the loop of every database (tests: a page test's app starts one in the test process)."""
    _threads.stop_all(timeout)
