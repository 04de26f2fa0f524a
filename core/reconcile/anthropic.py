"""Anthropic's own bill: the Admin API cost report and Messages usage report.

Shapes, from the Admin API reference (platform.claude.com/docs/en/api/admin/cost_report and
.../usage_report/retrieve_messages): a page ``{"data": [...], "has_more", "next_page"}``; a bucket
``{"starting_at", "ending_at", "results": [...]}`` in RFC 3339; a cost result
``{"amount": "4125.00" (a decimal string in cents), "currency": "USD", "description", "model",
"token_type", "cost_type", "service_tier", "context_window", "workspace_id"}`` (``model`` and
``token_type`` null for costs that are not tokens, such as web search); a usage result
``{"model", "uncached_input_tokens", "cache_creation": {"ephemeral_5m_input_tokens",
"ephemeral_1h_input_tokens"}, "cache_read_input_tokens", "output_tokens", "server_tool_use", ...}``.

Client: plain ``requests``. The pinned ``anthropic==2.12.0`` has no resource for these endpoints:
its organization reports are the Claude Enterprise analytics ones
(``/v1/organizations/analytics/cost_report``, ``.../usage_report``), other endpoints with other shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import requests

from core.reconcile.lines import CostLine, Fetched, UsageLine
from core.reconcile.pages import (
    Dialect,
    Page,
    ResultKind,
    ShapeError,
    amount,
    as_object,
    count,
    field,
    join,
    read_page,
    rfc3339,
    text_field,
)
from core.reconcile.transport import DEFAULT_TIMEOUT, checked_key, fetch_reports

PROVIDER = "anthropic"
KEY_VARIABLE = "ANTHROPIC_ADMIN_KEY"
BASE_URL_VARIABLE = "ANTHROPIC_ADMIN_BASE_URL"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
COST_PATH = "/v1/organizations/cost_report"
USAGE_PATH = "/v1/organizations/usage_report/messages"
LIMIT = 31  # buckets per page: the documented maximum with bucket_width=1d


def _bucket_bounds(bucket: Mapping[str, object], where: str) -> tuple[datetime, datetime]:
    return rfc3339(bucket, "starting_at", where), rfc3339(bucket, "ending_at", where)


def _result_kind(result: Mapping[str, object], where: str) -> ResultKind:
    if "amount" in result:
        return "cost"
    if "uncached_input_tokens" in result:
        return "usage"
    raise ShapeError(where, "is neither a cost result (amount) nor a messages usage result (uncached_input_tokens)")


def _cost_line(result: Mapping[str, object], day: date, where: str) -> CostLine:
    currency = result.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency.upper() != "USD"):
        raise ShapeError(join(where, "currency"), f"{currency!r} is not USD")
    value = amount(field(result, "amount", where), join(where, "amount"), cents=True)
    # A cost that is not tokens (web search, code execution) has no model: its description names it.
    model = text_field(result, "model", where, required=False)
    model = model or text_field(result, "description", where, required=False)
    if model is None:
        raise ShapeError(where, "has neither a model nor a description (fetch with group_by[]=description)")
    return CostLine(PROVIDER, day, model, text_field(result, "token_type", where, required=False), value)


def _usage_line(result: Mapping[str, object], day: date, where: str) -> UsageLine:
    model = text_field(result, "model", where)
    assert model is not None
    uncached = count(result, "uncached_input_tokens", where)
    creation_where = join(where, "cache_creation")
    creation = as_object(field(result, "cache_creation", where), creation_where)
    write_5m = count(creation, "ephemeral_5m_input_tokens", creation_where)
    write_1h = count(creation, "ephemeral_1h_input_tokens", creation_where)
    read = count(result, "cache_read_input_tokens", where)
    return UsageLine(
        provider=PROVIDER,
        day=day,
        model=model,
        input_tokens=uncached + write_5m + write_1h + read,  # ours counts every input token
        output_tokens=count(result, "output_tokens", where),
        cached_input_tokens=read,
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        requests=None,  # the usage report does not count requests
    )


DIALECT = Dialect(
    provider=PROVIDER,
    bucket_bounds=_bucket_bounds,
    result_kind=_result_kind,
    cost_line=_cost_line,
    usage_line=_usage_line,
)


def parse_cost_page(page: object) -> list[CostLine]:
    """The cost lines of one ``cost_report`` page (``group_by[]=description``), amounts in USD."""
    return list(read_page(DIALECT, page, "cost page", "cost").cost_lines)


def parse_usage_page(page: object) -> list[UsageLine]:
    """The usage lines of one ``usage_report/messages`` page (``group_by[]=model``)."""
    return list(read_page(DIALECT, page, "usage page", "usage").usage_lines)


def read_any_page(page: object, context: str) -> Page:
    """A saved page of either report, its kind told by its results (for ``reconcile import``)."""
    return read_page(DIALECT, page, context)


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def fetch(
    since: date,
    until: date,
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    session: requests.Session | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Fetched:
    """Anthropic's cost and messages usage for the UTC days from ``since`` up to, not including, ``until``.

    Follows every page of both reports. Every day of the range is in ``days`` and ``usage_days``
    (a day without lines was billed 0). Raises ``ReconcileError`` (nothing returned) on a missing
    or refused key, a server that does not answer, or a page not of the documented shape.
    """
    key = checked_key(PROVIDER, api_key, KEY_VARIABLE, since, until)
    base = base_url.rstrip("/")
    window = [("starting_at", _rfc3339(since)), ("ending_at", _rfc3339(until)), ("bucket_width", "1d")]
    return fetch_reports(
        DIALECT,
        since,
        until,
        reports=[
            (base + COST_PATH, [*window, ("group_by[]", "description"), ("limit", str(LIMIT))], "cost"),
            (base + USAGE_PATH, [*window, ("group_by[]", "model"), ("limit", str(LIMIT))], "usage"),
        ],
        headers={"x-api-key": key, "anthropic-version": API_VERSION},
        session=session,
        timeout=timeout,
    )
