"""The JSON API's bodies: a call object, a JSON array of them, or ``{"calls": [...]}``.

Each call is checked as ``import`` checks a JSON Lines row. A call without a
``request_id`` gets one derived from the sending key, its content and its index in the
body, so a sender that retries the same body records each call once, while the same call
sent with another key, or twice in one body, is a call of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import orjson

from core.ingest.limits import deeper_than, nesting_message, too_many_items
from core.ingest.record import Parsed, to_call
from core.ingest.rejections import Refusal
from core.recording.calls import CallError
from core.recording.importer import _check_fields as check_import_fields


class PayloadError(ValueError):
    """A body that is not a payload of this route at all (answered 400, nothing written)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def load_json(body: bytes) -> Any:
    """Strict JSON (no NaN or Infinity); orjson first, the standard library for what it refuses (huge integers)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower():  # orjson stops at 1,024 levels
            raise PayloadError(nesting_message()) from None
    else:
        if deeper_than(value):
            raise PayloadError(nesting_message())
        return value
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"the body is not JSON: not valid UTF-8 (byte 0x{body[exc.start]:02x} at {exc.start})"
        ) from None
    try:
        value = _STRICT.decode(text.lstrip("\ufeff"))
    except RecursionError:
        raise PayloadError(nesting_message()) from None
    except ValueError as exc:
        raise PayloadError(f"the body is not JSON ({exc})") from None
    if deeper_than(value):
        raise PayloadError(nesting_message())
    return value


def sample(item: object) -> str:
    try:
        return orjson.dumps(item).decode()
    except TypeError:
        return json.dumps(item, default=str)[:4000]


def items_of(payload: object) -> list[object]:
    """The calls of a parsed body: one object, an array, or ``{"calls": [...]}``."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        if "calls" in payload and len(payload) == 1:
            calls = payload["calls"]
            if not isinstance(calls, list):
                raise PayloadError(f'"calls" must be an array, found {type(calls).__name__}')
            return calls
        return [payload]
    raise PayloadError(
        f'expected a call object, an array of calls or {{"calls": [...]}}, found {type(payload).__name__}'
    )


def _derived_request_id(item: dict, index: int, sender: str) -> str:
    try:
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = json.dumps(item, sort_keys=True).encode()
    digest = hashlib.sha256(sender.encode() + b"\x00" + canonical).hexdigest()[:24]
    return f"api-{digest}-{index}"


def parse_calls(body: bytes, default_project: str | None, sender: str = "") -> Parsed:
    """Calls and per-item refusals of a JSON API body; :class:`PayloadError` when it is not such a body."""
    parsed = Parsed()
    items = items_of(load_json(body))
    if refused := too_many_items(len(items), "calls"):
        raise refused
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise CallError(f"expected a call object, found {type(item).__name__}")
            check_import_fields(item)
            call = to_call(item, default_project)
            if call.request_id is None:
                call = replace(call, request_id=_derived_request_id(item, index, sender))
        except CallError as exc:
            parsed.refused.append((index, Refusal(str(exc), sample(item))))
        else:
            parsed.calls.append((index, call))
    return parsed
