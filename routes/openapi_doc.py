"""The HTTP API's OpenAPI 3.1 description, served at ``GET /api/v1/openapi.json`` (no key needed).

Written from the contract (DESIGN.md, "Network ingestion" and "Figures for other tools") and from
the routes' own answers (``routes/ingest.py``: ``{"error": ...}`` bodies, ``WWW-Authenticate`` on 401,
``Retry-After`` on 503; ``core/cli.py``'s ``report --json`` for ``/api/v1/spend``). Release-3 answers
forbid properties the contract does not name, so a test running schemathesis against the server
catches an answer that drifts from this document.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "3.0.0"

CALLS_PATH = "/api/v1/calls"
TRACES_PATH = "/v1/traces"
LITELLM_PATH = "/api/v1/litellm"
CHECK_PATH = "/api/v1/check"
SPEND_PATH = "/api/v1/spend"
METRICS_PATH = "/metrics"
OPENAPI_PATH = "/api/v1/openapi.json"
HEALTH_PATH = "/api/v1/health"

MAX_BODY = "10 MB (10,485,760 bytes) after gzip decompression"
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
SIGNED_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> Schema:
    out: Schema = {"description": description, "content": _json(schema)}
    if headers:
        out["headers"] = headers
    return out


def _money(description: str, *, signed: bool = False) -> Schema:
    return {"type": "string", "pattern": SIGNED_DECIMAL if signed else DECIMAL, "description": description}


def _count(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "description": description}


def _errors(*codes: int) -> dict[str, Any]:
    """The JSON error answers of the JSON routes, each ``{"error": "one line naming the cause"}``."""
    known: dict[int, Schema] = {
        400: _answer("Bad input: the message names the argument or field and its value.", _ref("Error")),
        401: {"$ref": "#/components/responses/Unauthorized"},
        403: _answer("The key's scope does not cover this route; the message names the scope needed.", _ref("Error")),
        413: _answer(f"The body is over {MAX_BODY}.", _ref("Error")),
        415: _answer("The Content-Encoding is neither gzip nor identity.", _ref("Error")),
        503: {"$ref": "#/components/responses/Busy"},
    }
    return {str(code): known[code] for code in codes}


def _scope(*scopes: str) -> dict[str, Any]:
    return {"x-spendboard-scopes": list(scopes)}


def _scope_text(*scopes: str) -> str:
    return f" Needs a key of scope {' or '.join(f'`{s}`' for s in scopes)}."


def _call_schema() -> Schema:
    count = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "description": (
            'A call, fields as `python -m core import` reads them (DESIGN.md, "A call\'s usage"). '
            "Give the token counts, or `usage` (the provider's usage object as returned) instead."
        ),
        "properties": {
            "timestamp": {"type": "string", "description": "ISO 8601; UTC where no offset is given."},
            "provider": {"type": "string", "minLength": 1},
            "model": {"type": "string", "minLength": 1},
            "input_tokens": {**count, "description": "All input tokens, cache reads and writes included."},
            "output_tokens": {**count, "description": "All output tokens, reasoning included."},
            "cached_input_tokens": count,
            "cache_write_tokens": count,
            "cache_write_1h_tokens": count,
            "reasoning_tokens": count,
            "web_search_calls": count,
            "service_tier": {"type": "string", "enum": ["standard", "batch", "flex", "priority"]},
            "project": {"type": ["string", "null"]},
            "latency_ms": {"type": ["integer", "null"], "minimum": 0},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "user": {"type": ["string", "null"]},
            "request_id": {"type": ["string", "null"], "description": "Recorded once; a repeat is a duplicate."},
            "usage": {"type": "object", "description": "OpenAI, Anthropic or Gemini usage object, as returned."},
            "tags": {
                "type": "array",
                "maxItems": 20,
                "items": {"type": "string", "minLength": 1, "maxLength": 100},
            },
        },
        "required": ["timestamp", "provider", "model"],
        "additionalProperties": False,
    }


def _spend_parameters() -> list[Schema]:
    def query(name: str, description: str, schema: Schema) -> Schema:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    text = {"type": "string", "minLength": 1}
    return [
        query("since", "First day, included (YYYY-MM-DD, in `tz`).", {"type": "string", "format": "date"}),
        query("until", "Last day, included (YYYY-MM-DD, in `tz`).", {"type": "string", "format": "date"}),
        query(
            "by",
            "How rows are grouped.",
            {"type": "string", "enum": ["day", "provider", "model", "user", "project", "tag"], "default": "day"},
        ),
        query("tz", "IANA time zone of the days (`Europe/Berlin`).", {"type": "string", "default": "UTC"}),
        query("provider", "Only calls of this provider.", text),
        query("model", "Only calls of this model.", text),
        query("user", "Only calls of this user.", text),
        query("project", "Only calls of this project.", text),
        {
            **query("tag", "Only calls carrying this tag; repeat for several (all must match).", {}),
            "schema": {"type": "array", "items": text},
            "style": "form",
            "explode": True,
        },
    ]


def _schemas() -> dict[str, Schema]:
    tokens = {
        "calls": _count("Calls."),
        "input_tokens": _count("All input tokens."),
        "output_tokens": _count("All output tokens."),
    }
    row_keys = {
        "day": {"type": "string", "format": "date", "description": "With `by=day`: the day in `tz`."},
        **{
            key: {"type": "string", "description": f"With `by={key}`: the {key}."}
            for key in ("provider", "model", "user", "project", "tag")
        },
    }
    return {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string", "description": "One line naming what was wrong."}},
            "required": ["error"],
            "additionalProperties": False,
        },
        "Call": _call_schema(),
        "CallsBody": {
            "description": 'A call object, a JSON array of them, or `{"calls": [...]}`.',
            "oneOf": [
                {"type": "array", "items": _ref("Call")},
                {
                    "type": "object",
                    "properties": {"calls": {"type": "array", "items": _ref("Call")}},
                    "required": ["calls"],
                    "additionalProperties": False,
                },
                _ref("Call"),
            ],
        },
        "IngestResult": {
            "type": "object",
            "description": "Per-item results; a refused item does not stop the others.",
            "properties": {
                "accepted": _count("Items recorded."),
                "duplicates": _count("Items whose request id was already recorded (nothing changed)."),
                "refused": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": _count("Position of the item in the order sent, from 0."),
                            "error": {"type": "string"},
                        },
                        "required": ["index", "error"],
                        "additionalProperties": False,
                    },
                    "maxItems": 1000,
                    "description": "The first 1,000 refused items (`refused_total` counts them all).",
                },
                "refused_total": _count("Every item refused, listed or not."),
            },
            "required": ["accepted", "duplicates", "refused", "refused_total"],
            "additionalProperties": False,
        },
        "LiteLLMBody": {
            "description": (
                "LiteLLM StandardLoggingPayload objects (the `generic_api` callback): one object, a JSON array, "
                "or NDJSON (one a line)."
            ),
            "oneOf": [{"type": "array", "items": {"type": "object"}}, {"type": "object"}],
        },
        "OtlpExportTraceServiceResponse": {
            "type": "object",
            "description": "OTLP/HTTP ExportTraceServiceResponse in its JSON encoding (empty when all was taken).",
            "properties": {
                "partialSuccess": {
                    "type": "object",
                    "properties": {
                        "rejectedSpans": {
                            "type": ["string", "integer"],
                            "pattern": "^[0-9]+$",
                            "minimum": 0,
                            "description": "GenAI spans not recorded (int64: a string in proto3 JSON).",
                        },
                        "errorMessage": {"type": "string"},
                    },
                }
            },
        },
        "OtlpStatus": {
            "type": "object",
            "description": "google.rpc.Status in the request's encoding, as OTLP/HTTP answers errors.",
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "CheckRequest": {
            "type": "object",
            "description": (
                "What is about to be spent: `estimated_cost`, or `input_tokens` and `output_tokens` priced as a "
                "call. User, project, provider and model may each be left out; a budget whose scope names one "
                "that is left out does not apply."
            ),
            "properties": {
                "user": {"type": "string"},
                "project": {"type": "string"},
                "provider": {"type": "string"},
                "model": {"type": "string"},
                "estimated_cost": {
                    "type": ["string", "number"],
                    "pattern": DECIMAL,
                    "minimum": 0,
                    "description": "USD, read exactly (give it as a decimal string to be sure).",
                },
                "input_tokens": {"type": "integer", "minimum": 0},
                "output_tokens": {"type": "integer", "minimum": 0},
                "reserve": {
                    "type": "boolean",
                    "default": False,
                    "description": "Hold the estimate until a call with `request_id` is recorded or time runs out.",
                },
                "request_id": {"type": "string", "minLength": 1},
                "hold_seconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 300},
            },
            "oneOf": [
                {
                    "required": ["estimated_cost"],
                    "not": {"anyOf": [{"required": ["input_tokens"]}, {"required": ["output_tokens"]}]},
                },
                {"required": ["input_tokens", "output_tokens"], "not": {"required": ["estimated_cost"]}},
            ],
            "if": {"properties": {"reserve": {"const": True}}, "required": ["reserve"]},
            "then": {"required": ["request_id"]},
            "additionalProperties": False,
        },
        "CheckResult": {
            "type": "object",
            "description": "A denial is an answer (`allowed: false`), not an error.",
            "properties": {
                "allowed": {"type": "boolean", "description": "The estimate fits in every enforced budget below."},
                "limits": {
                    "type": "array",
                    "description": "Every enforced budget that applies, as it stood before this check's own hold.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "budget": {"type": "string", "description": "The budget's name."},
                            "subject": {
                                "type": ["string", "null"],
                                "description": "The user or project of an `each:` budget, else null.",
                            },
                            "period_end": {"type": "string", "format": "date-time"},
                            "amount": _money("USD."),
                            "spend": _money("USD spent in the period."),
                            "held": _money("USD held by reservations."),
                            "remaining": _money("amount - spend - held; negative when overspent.", signed=True),
                        },
                        "required": ["budget", "subject", "period_end", "amount", "spend", "held", "remaining"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["allowed", "limits"],
            "additionalProperties": False,
        },
        "SpendRow": {
            "type": "object",
            "description": "One group: its key (named after `by`) and its totals.",
            "properties": {
                **row_keys,
                **tokens,
                "cached_input_tokens": _count("Input tokens read from the cache."),
                "cache_write_tokens": _count("Input tokens written to the cache (5-minute)."),
                "cache_write_1h_tokens": _count("Input tokens written to the cache (1-hour)."),
                "reasoning_tokens": _count("Output tokens spent on reasoning."),
                "web_search_calls": _count("Web searches."),
                "cost_total": _money("USD, exact."),
                "estimated_calls": _count("Calls with no price, counted at the USD 1 per 1M tokens estimate."),
            },
            "required": [
                "calls",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "cache_write_1h_tokens",
                "reasoning_tokens",
                "web_search_calls",
                "cost_total",
                "estimated_calls",
            ],
            "oneOf": [{"required": [key]} for key in row_keys],
            "additionalProperties": False,
        },
        "Spend": {
            "type": "object",
            "description": "Exactly what `python -m core report --json` prints for the same arguments.",
            "properties": {
                "since": {"type": ["string", "null"], "format": "date"},
                "until": {"type": ["string", "null"], "format": "date"},
                "tz": {"type": "string"},
                "by": {"type": "string", "enum": ["day", "provider", "model", "user", "project", "tag"]},
                **tokens,
                "cost_total": _money("USD, exact."),
                "estimated_calls": _count("Calls with no price, counted at the estimate."),
                "rows": {"type": "array", "items": _ref("SpendRow")},
                "filters": {
                    "type": "object",
                    "description": "The filters applied: exact matches, and the tags a call must all carry.",
                    "properties": {
                        **{name: {"type": "string"} for name in ("provider", "model", "user", "project")},
                        "tag": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                "rows_overlap": {
                    "type": "boolean",
                    "description": "True with `by=tag`: a call counts under each of its tags; totals count it once.",
                },
            },
            "required": [
                "since",
                "until",
                "tz",
                "by",
                "calls",
                "input_tokens",
                "output_tokens",
                "cost_total",
                "estimated_calls",
                "filters",
                "rows_overlap",
                "rows",
            ],
            "additionalProperties": False,
        },
    }


def _paths() -> dict[str, Any]:
    gzip = {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "description": f"`gzip` for a compressed body; at most {MAX_BODY}.",
        "schema": {"type": "string", "enum": ["gzip", "identity"]},
    }
    otlp_json = _json(_ref("OtlpStatus"))["application/json"]
    otlp_error_content = {"application/json": otlp_json, "application/x-protobuf": {"schema": {}}}

    def otlp_error(description: str) -> Schema:
        return {"description": description, "content": otlp_error_content}

    return {
        CALLS_PATH: {
            "post": {
                "operationId": "ingestCalls",
                "summary": "Record calls",
                "description": "Records each call once per `request_id`." + _scope_text("ingest", "all"),
                **_scope("ingest", "all"),
                "parameters": [gzip],
                "requestBody": {"required": True, "content": _json(_ref("CallsBody"))},
                "responses": {
                    "200": _answer("Per-item results.", _ref("IngestResult")),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        LITELLM_PATH: {
            "post": {
                "operationId": "ingestLiteLLM",
                "summary": "Record LiteLLM logging payloads",
                "description": (
                    "LiteLLM's `generic_api` callback. A parsable body always gets 200 with per-item results."
                    + _scope_text("ingest", "all")
                ),
                **_scope("ingest", "all"),
                "parameters": [gzip],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("LiteLLMBody")},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": _answer("Per-item results.", _ref("IngestResult")),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        TRACES_PATH: {
            "post": {
                "operationId": "ingestTraces",
                "summary": "Record GenAI spans (OTLP/HTTP)",
                "description": (
                    "An OTLP ExportTraceServiceRequest. Spans carrying GenAI usage are recorded, others ignored; "
                    "answers in the request's encoding, as the OTLP specification says." + _scope_text("ingest", "all")
                ),
                **_scope("ingest", "all"),
                "parameters": [gzip],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "Taken; `partialSuccess` counts GenAI spans that could not be recorded.",
                        "content": {
                            "application/json": {"schema": _ref("OtlpExportTraceServiceResponse")},
                            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "400": otlp_error("Not an OTLP trace request."),
                    "401": {
                        **otlp_error("Missing, unknown or revoked API key."),
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    },
                    "403": otlp_error("The key's scope does not cover this route."),
                    "413": otlp_error(f"The body is over {MAX_BODY}."),
                    "415": otlp_error("Content-Type is neither application/x-protobuf nor application/json."),
                    "503": {
                        **otlp_error("The database is busy; retry."),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                },
            }
        },
        CHECK_PATH: {
            "post": {
                "operationId": "checkSpend",
                "summary": "May this call be made? (enforced budgets)",
                "description": (
                    "Answers for every enforced budget that applies; with `reserve`, an allowed check holds its "
                    "estimate." + _scope_text("check", "all")
                ),
                **_scope("check", "all"),
                "requestBody": {"required": True, "content": _json(_ref("CheckRequest"))},
                "responses": {
                    "200": _answer("The answer (a denial too).", _ref("CheckResult")),
                    **_errors(400, 401, 403, 413, 503),
                },
            }
        },
        SPEND_PATH: {
            "get": {
                "operationId": "getSpend",
                "summary": "Spend totals (the figures of `report --json`)",
                "description": (
                    "The same figures as `python -m core report --json` for the same arguments. An unknown argument, "
                    "a bad date, an unknown zone or a `by` that does not exist gets 400 naming it."
                    + _scope_text("read", "all")
                ),
                **_scope("read", "all"),
                "parameters": _spend_parameters(),
                "responses": {"200": _answer("Totals and rows.", _ref("Spend")), **_errors(400, 401, 403, 503)},
            }
        },
        METRICS_PATH: {
            "get": {
                "operationId": "getMetrics",
                "summary": "Prometheus metrics",
                "description": (
                    "Prometheus text exposition (OpenMetrics when the scraper's Accept asks for it): "
                    "`spendboard_cost_usd_total`, `spendboard_calls_total` by provider, model, status; "
                    "`spendboard_tokens_total` by provider, model, type; `spendboard_unpriced_calls_total`; "
                    "`spendboard_budget_spend_usd`, `spendboard_budget_amount_usd` by budget."
                    + _scope_text("read", "all")
                ),
                **_scope("read", "all"),
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(401, 403, 503),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getOpenAPI",
                "summary": "This document",
                "security": [],
                "responses": {"200": _answer("The OpenAPI 3.1 description of this API.", {"type": "object"})},
            }
        },
        HEALTH_PATH: {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": _answer(
                        "The server answers.",
                        {
                            "type": "object",
                            "properties": {"ok": {"const": True}},
                            "required": ["ok"],
                            "additionalProperties": False,
                        },
                    )
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every HTTP route, as a new dict (callers may serialise or change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Spendboard API",
            "version": API_VERSION,
            "description": (
                "Ingestion (JSON calls, OTLP traces, LiteLLM), spend checks against enforced budgets, and the "
                "figures for other tools (spend totals, Prometheus metrics). Every route but this document and "
                "the health check takes `Authorization: Bearer KEY`; a key has a scope (`ingest`, `read`, "
                "`check` or `all`). Money is a decimal string, exact."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key made by `python -m core keys create` (`sb_...`).",
                }
            },
            "responses": {
                "Unauthorized": {
                    "description": "Missing, unknown or revoked API key; nothing was written.",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
                    "content": _json(_ref("Error")),
                },
                "Busy": {
                    "description": "The database is busy; retry after the given seconds.",
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
                    "content": _json(_ref("Error")),
                },
            },
            "schemas": _schemas(),
        },
    }
