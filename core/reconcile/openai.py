"""OpenAI's own bill: the organization Costs and Completions Usage reports (Admin API key).

Shapes, from the API reference and the ``openai`` package's generated types
(``openai/types/admin/organization/usage_costs_response.py``, ``usage_completions_response.py``):
a page ``{"object": "page", "data": [...], "has_more", "next_page"}``; a bucket
``{"object": "bucket", "start_time", "end_time", "results": [...]}`` in epoch seconds; a cost result
``{"object": "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"},
"line_item": "gpt-4o-2024-08-06, input", "project_id"}``; a completions result
``{"object": "organization.usage.completions.result", "input_tokens" (cached included),
"input_cached_tokens", "output_tokens", "num_model_requests", "model", ...}``.

Client: plain ``requests``, not the pinned ``openai==2.54.0``. That SDK has these endpoints
(``client.admin.organization.usage.costs()`` / ``.completions()``), but its models type
``amount.value`` as a float (the exact amount would be lost), it sends list parameters as
``group_by[]=line_item`` where the contract (and the API reference) say ``group_by=line_item``,
and it retries timeouts on its own, so a server that does not answer would hold a fetch for
several timeouts. Reading the raw text through it would leave only its transport, which
``requests`` gives as simply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time

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
    epoch,
    field,
    join,
    read_page,
    text_field,
)
from core.reconcile.transport import DEFAULT_TIMEOUT, checked_key, fetch_reports

PROVIDER = "openai"
KEY_VARIABLE = "OPENAI_ADMIN_KEY"
BASE_URL_VARIABLE = "OPENAI_ADMIN_BASE_URL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
COSTS_PATH = "/organization/costs"
USAGE_PATH = "/organization/usage/completions"
COSTS_LIMIT = 180  # buckets per page: the documented maximum for costs
USAGE_LIMIT = 31  # the documented maximum for usage with bucket_width=1d

COST_OBJECT = "organization.costs.result"
USAGE_OBJECT = "organization.usage.completions.result"


def split_line_item(line_item: str) -> tuple[str, str | None]:
    """``"gpt-4o-2024-08-06, input"`` -> ``("gpt-4o-2024-08-06", "input")``; no comma: the whole text, None."""
    model, comma, component = line_item.partition(",")
    if not comma:
        return line_item.strip(), None
    return model.strip(), component.strip() or None


def _check_page(page: Mapping[str, object]) -> None:
    if "object" in page and page["object"] != "page":
        raise ShapeError("object", f"{page['object']!r} is not 'page'")


def _check_bucket(bucket: Mapping[str, object], where: str) -> None:
    if "object" in bucket and bucket["object"] != "bucket":
        raise ShapeError(join(where, "object"), f"{bucket['object']!r} is not 'bucket'")


def _bucket_bounds(bucket: Mapping[str, object], where: str) -> tuple[datetime, datetime]:
    return epoch(bucket, "start_time", where), epoch(bucket, "end_time", where)


def _result_kind(result: Mapping[str, object], where: str) -> ResultKind:
    told = result.get("object")
    if told == COST_OBJECT:
        return "cost"
    if told == USAGE_OBJECT:
        return "usage"
    if told is not None:
        raise ShapeError(join(where, "object"), f"{told!r} is neither {COST_OBJECT!r} nor {USAGE_OBJECT!r}")
    if "amount" in result:
        return "cost"
    if "input_tokens" in result:
        return "usage"
    raise ShapeError(where, "is neither a cost result (amount) nor a completions usage result (input_tokens)")


def _cost_line(result: Mapping[str, object], day: date, where: str) -> CostLine:
    money_where = join(where, "amount")
    money = as_object(field(result, "amount", where), money_where)
    currency = money.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency.lower() != "usd"):
        raise ShapeError(join(money_where, "currency"), f"{currency!r} is not USD")
    value = amount(field(money, "value", money_where), join(money_where, "value"))
    line_item = text_field(result, "line_item", where)
    if line_item is None:  # pragma: no cover - text_field() refuses a missing required field
        raise ShapeError(join(where, "line_item"), "is missing")
    model, component = split_line_item(line_item)
    if not model:
        raise ShapeError(join(where, "line_item"), f"{line_item!r} names no model")
    return CostLine(PROVIDER, day, model, component, value)


def _usage_line(result: Mapping[str, object], day: date, where: str) -> UsageLine:
    model = text_field(result, "model", where)
    assert model is not None
    return UsageLine(
        provider=PROVIDER,
        day=day,
        model=model,
        input_tokens=count(result, "input_tokens", where),  # cached tokens included, as ours
        output_tokens=count(result, "output_tokens", where),
        cached_input_tokens=count(result, "input_cached_tokens", where, required=False),
        cache_write_tokens=count(result, "input_cache_write_tokens", where, required=False),
        cache_write_1h_tokens=0,
        requests=count(result, "num_model_requests", where),
    )


DIALECT = Dialect(
    provider=PROVIDER,
    bucket_bounds=_bucket_bounds,
    result_kind=_result_kind,
    cost_line=_cost_line,
    usage_line=_usage_line,
    check_page=_check_page,
    check_bucket=_check_bucket,
)


def parse_cost_page(page: object) -> list[CostLine]:
    """The cost lines of one ``/organization/costs`` page (``group_by=line_item``)."""
    return list(read_page(DIALECT, page, "cost page", "cost").cost_lines)


def parse_usage_page(page: object) -> list[UsageLine]:
    """The usage lines of one ``/organization/usage/completions`` page (``group_by=model``)."""
    return list(read_page(DIALECT, page, "usage page", "usage").usage_lines)


def read_any_page(page: object, context: str) -> Page:
    """A saved page of either report, its kind told by its results (for ``reconcile import``)."""
    return read_page(DIALECT, page, context)


def _epoch(day: date) -> str:
    return str(int(datetime.combine(day, time(0), UTC).timestamp()))


def fetch(
    since: date,
    until: date,
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    session: requests.Session | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Fetched:
    """OpenAI's costs and completions usage for the UTC days from ``since`` up to, not including, ``until``.

    Follows every page of both reports. Every day of the range is in ``days`` and ``usage_days``
    (a day without lines was billed 0). Raises ``ReconcileError`` (nothing returned) on a missing
    or refused key, a server that does not answer, or a page not of the documented shape.
    """
    key = checked_key(PROVIDER, api_key, KEY_VARIABLE, since, until)
    base = base_url.rstrip("/")
    window = [("start_time", _epoch(since)), ("end_time", _epoch(until)), ("bucket_width", "1d")]
    return fetch_reports(
        DIALECT,
        since,
        until,
        reports=[
            (base + COSTS_PATH, [*window, ("group_by", "line_item"), ("limit", str(COSTS_LIMIT))], "cost"),
            (base + USAGE_PATH, [*window, ("group_by", "model"), ("limit", str(USAGE_LIMIT))], "usage"),
        ],
        headers={"Authorization": f"Bearer {key}"},
        session=session,
        timeout=timeout,
    )
