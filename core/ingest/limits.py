"""What one ingestion request may hold, and what its answer lists (README, "Security").

A body nested deeper than ``MAX_DEPTH`` is refused (400) before any item is read; a body of
more than ``MAX_ITEMS`` items is refused whole (413); an answer lists at most
``MAX_REFUSALS_LISTED`` refused items, with ``refused_total`` counting them all. Refusals are
kept grouped by reason, at most ``KEPT_REASONS_PER_REQUEST`` rows a request, and the kept rows
are pruned to the last ``KEPT_DAYS`` days and the newest ``KEPT_ROWS`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.ingest.body import BodyError

MAX_DEPTH = 1_000
MAX_ITEMS = 100_000
MAX_REFUSALS_LISTED = 1_000
KEPT_REASONS_PER_REQUEST = 100
KEPT_DAYS = 30
KEPT_ROWS = 10_000


def too_many_items(count: int, what: str = "items") -> BodyError | None:
    """The 413 for a body of more than ``MAX_ITEMS`` items (None when within the limit)."""
    if count <= MAX_ITEMS:
        return None
    message = f"the body holds {count:,} {what}, over the limit of {MAX_ITEMS:,} a request: send it in parts"
    return BodyError(413, message)


def deeper_than(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON nests containers more than ``limit`` levels anywhere (iterative: no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children: Iterable[object] = node.values() if isinstance(node, dict) else node  # type: ignore[assignment]
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def nesting_message(limit: int = MAX_DEPTH) -> str:
    return f"the body is nested deeper than {limit:,} levels (the limit of its depth)"
