"""Getting report pages over HTTP with ``requests``: every failure becomes one line naming the cause.

The key is sent in a header and never appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from urllib.parse import urlsplit, urlunsplit

import requests

from core.reconcile.errors import ReconcileError
from core.reconcile.lines import Fetched, day_range
from core.reconcile.pages import Collector, Dialect, Page, ResultKind, exact_json, read_page

DEFAULT_TIMEOUT = 60.0  # seconds to connect, and between bytes of an answer
MAX_PAGES = 10_000  # a server that pages forever is refused, not followed
Query = Sequence[tuple[str, str]]


def shown(url: str) -> str:
    """A URL as a message may show it: without any user or password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Headers(requests.auth.AuthBase):
    """The key headers, given as ``auth`` so that a ``~/.netrc`` entry for the host cannot replace them."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers)
        return request


def get_json(
    session: requests.Session,
    provider: str,
    url: str,
    query: Query,
    headers: dict[str, str],
    timeout: float,
) -> object:
    """GET ``url`` and return its JSON body, numbers exact; anything else raises ``ReconcileError``."""
    where = shown(url)
    try:
        response = session.get(url, params=list(query), auth=_Headers(headers), timeout=timeout)
    except requests.exceptions.Timeout:
        raise ReconcileError(provider, f"server did not answer within {timeout:g} s ({where})") from None
    except requests.exceptions.ConnectionError:
        raise ReconcileError(provider, f"server did not answer ({where}: connection failed)") from None
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
        raise ReconcileError(provider, f"base URL {where!r} is not an http(s) URL") from None
    except requests.exceptions.RequestException as exc:
        raise ReconcileError(provider, f"request to {where} failed ({type(exc).__name__})") from None
    status = response.status_code
    if status in (401, 403):
        raise ReconcileError(provider, f"key refused (HTTP {status} from {where})")
    if not 200 <= status < 300:
        raise ReconcileError(provider, f"HTTP {status} from {where}{_detail(response)}")
    try:
        return exact_json(response.content)
    except (ValueError, UnicodeDecodeError):
        kind = response.headers.get("Content-Type") or "no Content-Type"
        raise ReconcileError(provider, f"answer from {where} is not JSON ({kind})") from None


def _detail(response: requests.Response) -> str:
    """The provider's own error message, if it gave one (``{"error": {"message": ...}}``)."""
    try:
        body = exact_json(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    message = " ".join(message.split())
    return f": {message[:200]}"


def follow_pages(
    *,
    session: requests.Session,
    provider: str,
    url: str,
    query: Query,
    headers: dict[str, str],
    timeout: float,
    label: str,
    read: Callable[[object, str], Page],
) -> Iterator[tuple[Page, str]]:
    """Every page of one report: ``next_page`` sent back as ``page`` while ``has_more`` is true.

    Yields each page read with its context (``cost page 2``) for messages.
    """
    cursor: str | None = None
    cursors: set[str] = set()
    for number in range(1, MAX_PAGES + 1):
        context = f"{label} page {number}"
        sent = list(query) + ([("page", cursor)] if cursor is not None else [])
        page = read(get_json(session, provider, url, sent, headers, timeout), context)
        yield page, context
        if not page.has_more:
            return
        assert page.next_page is not None  # read_page refuses has_more without next_page
        if page.next_page in cursors:
            raise ReconcileError(provider, f"{context}: next_page {page.next_page!r} was already followed")
        cursors.add(page.next_page)
        cursor = page.next_page
    raise ReconcileError(provider, f"{label}: more than {MAX_PAGES} pages")


def checked_key(provider: str, api_key: str, variable: str, since: date, until: date) -> str:
    """The admin key, stripped, once the key and the range are known good: nothing is sent otherwise."""
    if not api_key or not api_key.strip():
        raise ReconcileError(provider, f"no admin key (set {variable})")
    if until <= since:
        raise ReconcileError(provider, f"until {until} is not after since {since}")
    return api_key.strip()


def fetch_reports(
    dialect: Dialect,
    since: date,
    until: date,
    *,
    reports: Sequence[tuple[str, Query, ResultKind]],
    headers: dict[str, str],
    session: requests.Session | None,
    timeout: float,
) -> Fetched:
    """Every page of each report (``url``, query, kind) for the days ``since`` up to ``until``, gathered.

    Every day of the range is known (``days`` and ``usage_days``): a day without lines was billed 0.
    A session made here is closed here.
    """
    collector = Collector(dialect.provider, within=(since, until))
    http = session if session is not None else requests.Session()
    try:
        for url, query, kind in reports:
            pages = follow_pages(
                session=http,
                provider=dialect.provider,
                url=url,
                query=query,
                headers=headers,
                timeout=timeout,
                label=kind,
                read=_reader(dialect, kind),
            )
            for page, context in pages:
                collector.add(page, context)
    finally:
        if session is None:
            http.close()
    days = day_range(since, until)
    return collector.fetched(days=days, usage_days=days)


def _reader(dialect: Dialect, kind: ResultKind) -> Callable[[object, str], Page]:
    return lambda body, context: read_page(dialect, body, context, kind)
