"""The OpenAPI document: a valid OpenAPI 3.1 description whose schemas accept the contract's answers and no others."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from routes.openapi_doc import openapi_document

DOC = openapi_document()
PROTECTED = {
    ("post", "/api/v1/calls"): ["ingest", "all"],
    ("post", "/v1/traces"): ["ingest", "all"],
    ("post", "/api/v1/litellm"): ["ingest", "all"],
    ("post", "/api/v1/check"): ["check", "all"],
    ("get", "/api/v1/spend"): ["read", "all"],
    ("get", "/metrics"): ["read", "all"],
}


def validator(name: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for one component schema, its $refs resolved inside the document."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def test_the_document_is_valid_openapi_3_1_and_plain_json() -> None:
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"
    assert json.loads(json.dumps(DOC)) == DOC


def _without_description(doc: dict[str, Any]) -> None:
    del doc["paths"]["/api/v1/spend"]["get"]["responses"]["200"]["description"]


def _parameter_in_body(doc: dict[str, Any]) -> None:
    doc["paths"]["/api/v1/spend"]["get"]["parameters"][0]["in"] = "body"  # OpenAPI 2 style, gone in 3.x


@pytest.mark.parametrize("breakage", [_without_description, _parameter_in_body])
def test_the_validator_would_catch_a_broken_document(breakage: Any) -> None:
    broken = openapi_document()
    breakage(broken)
    with pytest.raises(OpenAPIValidationError):
        validate(broken)
    assert openapi_document() == DOC  # a fresh document each time: the breakage did not leak


def test_every_route_is_described_with_its_key_and_scope() -> None:
    operations = {(method, path) for path, item in DOC["paths"].items() for method in item}
    assert operations == set(PROTECTED) | {("get", "/api/v1/openapi.json"), ("get", "/api/v1/health")}
    assert DOC["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": DOC["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert DOC["security"] == [{"bearerAuth": []}]
    for (method, path), scopes in PROTECTED.items():
        operation = DOC["paths"][path][method]
        assert "security" not in operation, path  # the document-wide bearer key applies
        assert operation["x-spendboard-scopes"] == scopes
        assert {"200", "401", "403", "503"} <= set(operation["responses"]), path
    for path in ("/api/v1/openapi.json", "/api/v1/health"):
        assert DOC["paths"][path]["get"]["security"] == []
    for path in ("/api/v1/calls", "/v1/traces", "/api/v1/litellm", "/api/v1/check"):
        assert "413" in DOC["paths"][path]["post"]["responses"]
        assert "400" in DOC["paths"][path]["post"]["responses"]


def test_spend_takes_the_report_arguments() -> None:
    parameters = {p["name"]: p for p in DOC["paths"]["/api/v1/spend"]["get"]["parameters"]}
    assert list(parameters) == ["since", "until", "by", "tz", "provider", "model", "user", "project", "tag"]
    assert parameters["by"]["schema"]["enum"] == ["day", "provider", "model", "user", "project", "tag"]
    assert parameters["tag"]["schema"]["type"] == "array" and parameters["tag"]["explode"] is True
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())


def _totals() -> dict[str, Any]:
    # the keys of core/cli.py `_report_row_json` (release 2), money as decimal strings
    return {
        "calls": 3,
        "input_tokens": 3000,
        "output_tokens": 1500,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "web_search_calls": 0,
        "cost_total": "0.0075",
        "estimated_calls": 0,
    }


def report(by: str, key: Any) -> dict[str, Any]:
    """What `report --json` prints (core/cli.py `cmd_report`)."""
    return {
        "since": "2026-11-01",
        "until": "2026-12-01",
        "tz": "Europe/Berlin",
        "by": by,
        "calls": 3,
        "input_tokens": 3000,
        "output_tokens": 1500,
        "cost_total": "0.0075",
        "estimated_calls": 0,
        "filters": {},
        "rows_overlap": by == "tag",
        "rows": [{by: key, **_totals()}],
    }


@pytest.mark.parametrize(
    ("by", "key"), [("day", "2026-11-03"), ("model", "gpt-4o"), ("user", "(no user)"), ("tag", "env:prod")]
)
def test_spend_schema_accepts_the_report_json(by: str, key: str) -> None:
    answer = report(by, key)
    if by == "tag":
        answer["rows_overlap"] = True
    assert list(validator("Spend").iter_errors(answer)) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a.update(cost_total=0.0075),  # a float, not a decimal string
        lambda a: a.update(extra=1),  # a key the contract does not name
        lambda a: a["rows"][0].update(provider="openai"),  # two keys in a row
        lambda a: a["rows"][0].pop("model"),  # no key in a row
        lambda a: a.update(by="week"),
        lambda a: a.pop("estimated_calls"),
        lambda a: a["rows"][0].update(calls=-1),
    ],
)
def test_spend_schema_refuses_what_the_contract_does_not_say(change: Any) -> None:
    answer = report("model", "gpt-4o")
    change(answer)
    assert list(validator("Spend").iter_errors(answer))


def test_check_shapes() -> None:
    answer: dict[str, Any] = {
        "allowed": False,
        "limits": [
            {
                "budget": "team cap",
                "subject": None,
                "period_end": "2026-12-01T00:00:00+00:00",
                "amount": "5",
                "spend": "4.5",
                "held": "1",
                "remaining": "-0.5",
            }
        ],
    }
    assert list(validator("CheckResult").iter_errors(answer)) == []
    answer["limits"][0]["amount"] = "-5"
    assert list(validator("CheckResult").iter_errors(answer))

    request = validator("CheckRequest")
    assert request.is_valid({"user": "u", "provider": "openai", "model": "gpt-4o", "estimated_cost": "0.25"})
    assert request.is_valid({"input_tokens": 1000, "output_tokens": 500, "reserve": True, "request_id": "r1"})
    assert not request.is_valid({"estimated_cost": "0.25", "input_tokens": 1000, "output_tokens": 500})
    assert not request.is_valid({"input_tokens": 1000})
    assert not request.is_valid({"estimated_cost": "0.25", "reserve": True})  # reserve needs a request_id
    assert not request.is_valid({"estimated_cost": "0.25", "hold_seconds": 86401, "request_id": "r"})
    assert not request.is_valid({"estimated_cost": "0.25", "colour": "red"})


def test_ingestion_shapes() -> None:
    call = {"timestamp": "2026-11-03T10:00:00Z", "provider": "openai", "model": "gpt-4o", "input_tokens": 10}
    body = validator("CallsBody")
    assert body.is_valid(call)
    assert body.is_valid([call, call])
    assert body.is_valid({"calls": [call]})
    assert not body.is_valid({"calls": call})
    result = {"accepted": 1, "duplicates": 0, "refused": [{"index": 1, "error": "x"}], "refused_total": 1}
    assert validator("IngestResult").is_valid(result)
    assert not validator("IngestResult").is_valid({"accepted": 1, "duplicates": 0})
    assert not validator("IngestResult").is_valid({k: v for k, v in result.items() if k != "refused_total"})
    assert validator("Error").is_valid({"error": "unknown or revoked API key"})
    otlp = validator("OtlpExportTraceServiceResponse")
    assert otlp.is_valid({})
    assert otlp.is_valid({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 GenAI span(s) not recorded"}})
    assert not otlp.is_valid({"partialSuccess": {"rejectedSpans": "two"}})
