"""Fetching the providers' own bill from a local stub of their Admin APIs: paging, parameters, refusals."""

from __future__ import annotations

import json
import socket
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from admin_api_stub import (
    AdminApiStub,
    anthropic_cost,
    anthropic_usage,
    openai_cost,
    openai_usage,
)

from core.reconcile import anthropic, openai
from core.reconcile.errors import ReconcileError
from core.reconcile.files import read_pages
from core.reconcile.lines import CostLine, UsageLine

SINCE = date(2026, 11, 1)
UNTIL = date(2026, 11, 6)  # five days: three pages of two buckets at most
NOV_3 = date(2026, 11, 3)
EVERY_DAY = {SINCE + timedelta(days=n) for n in range(5)}


def openai_stub(**options: object) -> AdminApiStub:
    return AdminApiStub(
        openai_costs={
            SINCE: [openai_cost("gpt-4o-2024-08-06, input", "0.1"), openai_cost("gpt-4o-2024-08-06, output", "0.2")],
            NOV_3: [openai_cost("gpt-4o-mini-2024-07-18, input", "1.0000000000004999")],
            date(2026, 11, 5): [openai_cost("web search tool calls", "2.50")],
        },
        openai_usage={
            SINCE: [openai_usage("gpt-4o-2024-08-06", 1000, 200, cached=800, requests=3)],
            NOV_3: [openai_usage("gpt-4o-mini-2024-07-18", 500, 50, requests=2)],
        },
        **options,  # type: ignore[arg-type]
    )


def anthropic_stub(**options: object) -> AdminApiStub:
    return AdminApiStub(
        anthropic_costs={
            NOV_3: [
                anthropic_cost("claude-sonnet-4-5-20250929", "output_tokens", "4125.00"),
                anthropic_cost("claude-sonnet-4-5-20250929", "output_tokens", "0.5", context_window="200k-1M"),
                anthropic_cost(None, None, "1000", cost_type="web_search", description="Web Search Usage"),
            ],
            date(2026, 11, 4): [anthropic_cost("claude-haiku-4-5", "uncached_input_tokens", "12.3456789012345")],
        },
        anthropic_usage={
            NOV_3: [anthropic_usage("claude-sonnet-4-5-20250929", 100, 50, cache_5m=20, cache_1h=30, cache_read=400)],
        },
        **options,  # type: ignore[arg-type]
    )


def test_openai_fetch_follows_every_page_with_the_documented_parameters() -> None:
    with openai_stub() as stub:
        fetched = openai.fetch(SINCE, UNTIL, api_key=stub.openai_key, base_url=stub.openai_url)
    costs = stub.requests_to("/v1/organization/costs")
    usage = stub.requests_to("/v1/organization/usage/completions")
    assert len(costs) == 3 and len(usage) == 3  # five days, two buckets a page
    first = costs[0]
    assert first.query == {
        "start_time": ["1793491200"],  # 2026-11-01T00:00:00Z
        "end_time": ["1793923200"],  # 2026-11-06T00:00:00Z, not included
        "bucket_width": ["1d"],
        "group_by": ["line_item"],
        "limit": ["180"],
    }
    assert first.headers["authorization"] == f"Bearer {stub.openai_key}"
    assert usage[0].query["group_by"] == ["model"] and usage[0].query["bucket_width"] == ["1d"]
    # each next page is asked with the cursor the previous one gave, and nothing else changes
    served = [json.loads(page) for page in stub.pages()]
    cursors = [page["next_page"] for page in served if page["next_page"]]
    assert [r.query.get("page") for r in costs + usage] == [
        None,
        [cursors[0]],
        [cursors[1]],
        None,
        [cursors[2]],
        [cursors[3]],
    ]
    assert all({k: v for k, v in r.query.items() if k != "page"} == first.query for r in costs)

    assert fetched.days == EVERY_DAY and fetched.usage_days == EVERY_DAY
    assert [(line.day, line.model, line.token_type, line.amount) for line in fetched.cost_lines] == [
        (SINCE, "gpt-4o-2024-08-06", "input", Decimal("0.1")),
        (SINCE, "gpt-4o-2024-08-06", "output", Decimal("0.2")),
        (NOV_3, "gpt-4o-mini-2024-07-18", "input", Decimal("1")),  # 13+ places rounded half-even to 12
        (date(2026, 11, 5), "web search tool calls", None, Decimal("2.5")),  # on the last page
    ]
    assert fetched.billed_total == Decimal("3.8")
    assert fetched.usage_lines == (
        UsageLine("openai", SINCE, "gpt-4o-2024-08-06", 1000, 200, 800, 0, 0, 3),
        UsageLine("openai", NOV_3, "gpt-4o-mini-2024-07-18", 500, 50, 0, 0, 0, 2),
    )


def test_anthropic_fetch_follows_every_page_with_the_documented_parameters() -> None:
    with anthropic_stub() as stub:
        fetched = anthropic.fetch(SINCE, UNTIL, api_key=stub.anthropic_key, base_url=stub.anthropic_url)
    costs = stub.requests_to("/v1/organizations/cost_report")
    usage = stub.requests_to("/v1/organizations/usage_report/messages")
    assert len(costs) == 3 and len(usage) == 3
    assert costs[0].query == {
        "starting_at": ["2026-11-01T00:00:00Z"],
        "ending_at": ["2026-11-06T00:00:00Z"],
        "bucket_width": ["1d"],
        "group_by[]": ["description"],
        "limit": ["31"],
    }
    assert usage[0].query["group_by[]"] == ["model"]
    assert costs[0].headers["x-api-key"] == stub.anthropic_key
    assert costs[0].headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in costs[0].headers
    assert [r.query.get("page") is not None for r in costs] == [False, True, True]

    assert fetched.cost_lines == (
        # the two context windows of one model and token type are one line; cents became dollars exactly
        CostLine("anthropic", NOV_3, "Web Search Usage", None, Decimal("10")),
        CostLine("anthropic", NOV_3, "claude-sonnet-4-5-20250929", "output_tokens", Decimal("41.255")),
        CostLine(
            "anthropic", date(2026, 11, 4), "claude-haiku-4-5", "uncached_input_tokens", Decimal("0.123456789012")
        ),
    )
    assert fetched.usage_lines == (
        UsageLine("anthropic", NOV_3, "claude-sonnet-4-5-20250929", 550, 50, 400, 20, 30, None),
    )
    assert fetched.days == EVERY_DAY  # days without lines were billed 0


def test_the_issue_example_a_day_billed_4125_cents_is_41_dollars_25() -> None:
    data = {NOV_3: [anthropic_cost("claude-sonnet-4-5", "output_tokens", "4125.00")]}
    with AdminApiStub(anthropic_costs=data) as stub:
        fetched = anthropic.fetch(
            NOV_3, NOV_3 + timedelta(days=1), api_key=stub.anthropic_key, base_url=stub.anthropic_url
        )
    assert fetched.billed_total == Decimal("41.25")
    assert fetched.days == {NOV_3}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_named(status: int) -> None:
    with openai_stub(refuse_status=status) as stub:
        with pytest.raises(ReconcileError) as caught:
            openai.fetch(SINCE, UNTIL, api_key="sk-admin-wrong", base_url=stub.openai_url)
    assert str(caught.value) == f"openai: key refused (HTTP {status} from {stub.openai_url}/organization/costs)"
    assert "sk-admin-wrong" not in str(caught.value)
    with anthropic_stub(refuse_status=status) as stub:
        with pytest.raises(ReconcileError, match=rf"^anthropic: key refused \(HTTP {status} from "):
            anthropic.fetch(SINCE, UNTIL, api_key="sk-ant-wrong", base_url=stub.anthropic_url)


def test_a_missing_key_sends_nothing() -> None:
    with openai_stub() as stub:
        with pytest.raises(ReconcileError, match=r"^openai: no admin key \(set OPENAI_ADMIN_KEY\)$"):
            openai.fetch(SINCE, UNTIL, api_key=" ", base_url=stub.openai_url)
        with pytest.raises(ReconcileError, match=r"^anthropic: no admin key \(set ANTHROPIC_ADMIN_KEY\)$"):
            anthropic.fetch(SINCE, UNTIL, api_key="", base_url=stub.anthropic_url)
    assert stub.requests == []


def test_a_server_that_never_answers_stops_the_fetch_after_the_timeout() -> None:
    with anthropic_stub(mode="hang") as stub:
        started = time.monotonic()
        with pytest.raises(ReconcileError, match=r"^anthropic: server did not answer within 0\.5 s "):
            anthropic.fetch(SINCE, UNTIL, api_key=stub.anthropic_key, base_url=stub.anthropic_url, timeout=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 3  # one timeout, no retries behind the user's back
    assert len(stub.requests) == 1


def test_a_server_that_is_not_there_did_not_answer() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        ReconcileError, match=r"^openai: server did not answer \(http://127\.0\.0\.1:\d+/v1/organization"
    ):
        openai.fetch(SINCE, UNTIL, api_key="sk-admin-x", base_url=f"http://127.0.0.1:{port}/v1", timeout=2)


def test_a_wrong_shape_on_a_later_page_refuses_the_whole_fetch() -> None:
    with openai_stub(mode="wrong_shape", mode_after=1) as stub:
        with pytest.raises(ReconcileError) as caught:
            openai.fetch(SINCE, UNTIL, api_key=stub.openai_key, base_url=stub.openai_url)
    assert str(caught.value) == "openai: cost page 2: data[0].start_time: is missing"


def test_a_body_that_is_not_json_is_named() -> None:
    with anthropic_stub(mode="not_json") as stub:
        with pytest.raises(
            ReconcileError, match=r"^anthropic: answer from .*/v1/organizations/cost_report is not JSON \(text/html\)$"
        ):  # noqa: E501
            anthropic.fetch(SINCE, UNTIL, api_key=stub.anthropic_key, base_url=stub.anthropic_url)


def test_another_error_status_is_named_with_the_provider_message() -> None:
    with openai_stub(mode="error", status=503) as stub:
        with pytest.raises(ReconcileError) as caught:
            openai.fetch(SINCE, UNTIL, api_key=stub.openai_key, base_url=stub.openai_url)
    assert str(caught.value) == (
        f"openai: HTTP 503 from {stub.openai_url}/organization/costs: the stub was told to fail"
    )


def test_a_report_of_the_other_kind_on_an_endpoint_is_refused() -> None:
    stub = anthropic_stub()
    stub.anthropic_usage = {NOV_3: [anthropic_cost("claude-sonnet-4-5", "output_tokens", "1")]}
    with stub:
        with pytest.raises(
            ReconcileError, match=r"^anthropic: usage page 2: data\[0\]\.results\[0\]: is a cost result"
        ):
            anthropic.fetch(SINCE, UNTIL, api_key=stub.anthropic_key, base_url=stub.anthropic_url)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_importing_the_saved_pages_equals_the_fetch(provider: str, tmp_path: Path) -> None:
    if provider == "openai":
        with openai_stub() as stub:
            fetched = openai.fetch(SINCE, UNTIL, api_key=stub.openai_key, base_url=stub.openai_url)
    else:
        with anthropic_stub() as stub:
            fetched = anthropic.fetch(SINCE, UNTIL, api_key=stub.anthropic_key, base_url=stub.anthropic_url)
    pages = stub.pages()
    assert len(pages) == 6
    array = tmp_path / "pages.json"
    array.write_text("[" + ",\n".join(pages) + "]")  # the pages as served, numbers untouched
    lines = tmp_path / "pages.ndjson"
    lines.write_text("\n".join(reversed(pages)) + "\n")  # any order
    assert read_pages(array, provider) == fetched
    assert read_pages(lines, provider) == fetched


def test_a_netrc_entry_for_the_host_does_not_replace_the_admin_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with openai_stub() as stub:
        fetched = openai.fetch(SINCE, UNTIL, api_key=stub.openai_key, base_url=stub.openai_url)
    assert fetched.billed_total == Decimal("3.8")
    assert {r.headers["authorization"] for r in stub.requests} == {f"Bearer {stub.openai_key}"}
