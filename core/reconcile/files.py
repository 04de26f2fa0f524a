"""``reconcile import FILE``: report pages saved from the APIs, for teams that give no admin key.

A file is a JSON array of page objects, or one page a line (JSON Lines; a single page object,
indented or not, is read too). Pages of the cost report, the usage report or both, in any order:
each page's results tell its kind. The file is read whole before anything is returned: one page
not of the documented shape refuses the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from core.reconcile import anthropic, openai
from core.reconcile.errors import ReconcileError
from core.reconcile.lines import Fetched
from core.reconcile.pages import Collector, Page, exact_json

READERS: dict[str, Callable[[object, str], Page]] = {
    openai.PROVIDER: openai.read_any_page,
    anthropic.PROVIDER: anthropic.read_any_page,
}


def read_pages(path: str | os.PathLike[str], provider: str) -> Fetched:
    """The report in a saved file: lines summed by key, ``days`` the days of its cost pages,
    ``usage_days`` those of its usage pages (a page with no result at all counts for both).

    Raises ``ReconcileError`` naming the provider, the page or line, and what is wrong.
    """
    read = READERS.get(provider)
    if read is None:
        known = ", ".join(sorted(READERS))
        raise ReconcileError(provider, f"no report pages are known for this provider (one of {known})")
    name = Path(path).name
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ReconcileError(provider, f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReconcileError(provider, f"{name} is not UTF-8 text") from None
    collector = Collector(provider)
    for page, context in _pages(content, provider, name):
        collector.add(read(page, f"{name}: {context}"), f"{name}: {context}")
    if not collector.pages_seen:
        raise ReconcileError(provider, f"{name} holds no day of any report")
    return collector.fetched()


def _pages(content: str, provider: str, name: str) -> Iterator[tuple[object, str]]:
    """Each page of the file with where it is (``page 3`` of an array, ``line 3`` of JSON Lines)."""
    stripped = content.strip()
    if not stripped:
        raise ReconcileError(provider, f"{name} is empty")
    if stripped.startswith("["):
        try:
            pages = exact_json(stripped)
        except ValueError as exc:
            raise ReconcileError(provider, f"{name} is not a JSON array of pages ({_reason(exc)})") from None
        assert isinstance(pages, list)
        if not pages:
            raise ReconcileError(provider, f"{name} is an empty array: no pages")
        for number, page in enumerate(pages, start=1):
            yield page, f"page {number}"
        return
    if stripped.startswith("{"):  # one page, perhaps indented over several lines
        try:
            whole = exact_json(stripped)
        except ValueError:
            pass  # several pages, one a line
        else:
            yield whole, "page 1"
            return
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            page = exact_json(line)
        except ValueError as exc:
            raise ReconcileError(provider, f"{name}: line {number} is not JSON ({_column(exc)})") from None
        yield page, f"line {number}"


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def _column(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)
