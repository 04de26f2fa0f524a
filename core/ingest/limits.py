"""What one ingestion request may hold, and what its answer lists (README, "Security").

A body nested deeper than ``MAX_DEPTH`` is refused (400) before any item is read; a body of
more than ``MAX_ITEMS`` items is refused whole (413); an answer lists at most
``MAX_REFUSALS_LISTED`` refused items, with ``refused_total`` counting them all.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_DEPTH = 1_000
MAX_ITEMS = 100_000
MAX_REFUSALS_LISTED = 1_000


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
