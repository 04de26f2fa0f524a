"""track() with the real anthropic and openai clients against a local stub: Messages and Responses recorded whole."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import openai
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session
from stub_providers import ANTHROPIC_USAGE, StubProviders

from core.pricing.lookup import price_book
from core.storage.engine import make_engine
from core.storage.tables import PriceVersion, UsageRecord
from core.tracking import TrackingError, track, track_completion

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-5"


def add_price(engine: Engine, provider: str, model: str, **rates: str) -> None:
    """A price version in force since 2020 (rates per token), as a form edit would store it."""
    values = {k: Decimal(v) for k, v in rates.items()}
    with engine.begin() as conn:
        conn.execute(
            insert(PriceVersion).values(
                provider=provider,
                model_name=model,
                effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                created_at=datetime(2020, 1, 1, tzinfo=UTC),
                source="form",
                **values,
            )
        )
    price_book(engine).invalidate()


@pytest.fixture
def priced(engine: Engine) -> Engine:
    # Claude Sonnet: $3 / $15 per 1M, read $0.30, write $3.75 (5 minutes) / $6 (1 hour), $10 per 1,000 searches
    add_price(
        engine,
        "anthropic",
        CLAUDE,
        input_token_cost="0.000003",
        output_token_cost="0.000015",
        cached_input_token_cost="0.0000003",
        cache_write_token_cost="0.00000375",
        cache_write_1h_token_cost="0.000006",
        cost_per_web_search="0.01",
    )
    # gpt-5: $1.25 / $0.125 cached / $10 per 1M
    add_price(
        engine,
        "openai",
        GPT,
        input_token_cost="0.00000125",
        output_token_cost="0.00001",
        cached_input_token_cost="0.000000125",
    )
    return engine


def logged(engine: Engine) -> list[UsageRecord]:
    with Session(engine) as session:
        return list(session.scalars(select(UsageRecord).order_by(UsageRecord.id)))


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def claude_client(stub: StubProviders) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stub.anthropic_url, api_key="test-key", max_retries=0, timeout=5)


def openai_client(stub: StubProviders) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.openai_url, api_key="test-token", max_retries=0, timeout=5)


def ask_claude(client: anthropic.Anthropic) -> anthropic.types.Message:
    return client.messages.create(model=CLAUDE, max_tokens=256, messages=[{"role": "user", "content": "2+2?"}])


def ask_gpt(client: openai.OpenAI) -> openai.types.responses.Response:
    return client.responses.create(model=GPT, input="2+2?")


# Anthropic Messages


def test_an_anthropic_message_is_recorded_with_cache_reads_writes_and_web_searches(priced: Engine) -> None:
    with StubProviders(answered_model="claude-sonnet-4-6-20260201") as stub:
        client = claude_client(stub)
        assert track(client, priced, "anthropic", user="ana", project="support-bot") is client
        message = ask_claude(client)
    assert isinstance(message, anthropic.types.Message)  # what the caller gets is the client's own answer
    assert message.id == "msg_01HCDu5LRGeP2o7s2xGmxyx8" and message.content[0].text == "2 + 2 is 4."  # type: ignore[union-attr]
    assert message.usage.input_tokens == 3 and message.usage.cache_read_input_tokens == 1111
    sent = stub.requests[0]
    assert sent.path == "/v1/messages" and sent.body["model"] == CLAUDE
    assert "test-key" in sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")
    [row] = logged(priced)
    assert (row.provider, row.model, row.request_id, row.user_id, row.project) == (
        "anthropic",
        CLAUDE,  # the requested model, not the dated name in the answer
        "msg_01HCDu5LRGeP2o7s2xGmxyx8",
        "ana",
        "support-bot",
    )
    assert (row.input_tokens, row.cached_input_tokens, row.cache_write_tokens, row.cache_write_1h_tokens) == (
        3 + 1111 + 418,
        1111,
        18,
        400,
    )
    assert (row.output_tokens, row.reasoning_tokens, row.web_search_calls, row.service_tier) == (50, 0, 2, "standard")
    # 3 uncached * 3e-6 + 1111 * 3e-7 + 18 * 3.75e-6 + 400 * 6e-6 = 0.0028098; 50 * 15e-6 = 0.00075; 2 * $0.01
    assert (row.cost_input, row.cost_output, row.cost_web_search) == (
        Decimal("0.0028098"),
        Decimal("0.00075"),
        Decimal("0.02"),
    )
    assert row.cost_total == Decimal("0.0235598")
    assert row.latency_ms is not None and row.latency_ms >= 0 and row.status == "ok"


def test_the_classic_anthropic_block_bills_every_write_at_the_5_minute_rate(priced: Engine) -> None:
    usage = {"input_tokens": 3, "cache_creation_input_tokens": 418, "cache_read_input_tokens": 1111, "output_tokens": 0}
    with StubProviders(anthropic_usage=usage) as stub:
        ask_claude(track(claude_client(stub), priced, "anthropic"))
    [row] = logged(priced)
    assert (row.input_tokens, row.cached_input_tokens, row.cache_write_tokens, row.cache_write_1h_tokens) == (
        1532,
        1111,
        418,
        0,
    )
    # 3 * 3e-6 + 1111 * 3e-7 + 418 * 3.75e-6 = 0.000009 + 0.0003333 + 0.0015675
    assert row.cost_total == Decimal("0.0019098")


def test_the_same_message_twice_is_billed_once_and_wrapping_twice_records_once(priced: Engine) -> None:
    with StubProviders() as stub:
        client = track(track(claude_client(stub), priced, "anthropic"), priced, "anthropic")
        ask_claude(client)
        ask_claude(client)  # a retry answered with the same id
        stub.message_id = "msg_second"
        ask_claude(client)
    assert [row.request_id for row in logged(priced)] == ["msg_01HCDu5LRGeP2o7s2xGmxyx8", "msg_second"]
    assert len(stub.requests) == 3


def test_an_anthropic_error_reaches_the_caller_and_records_nothing(priced: Engine) -> None:
    with StubProviders(mode="unauthorized") as stub:
        client = track(claude_client(stub), priced, "anthropic")
        with pytest.raises(anthropic.AuthenticationError):
            ask_claude(client)
        stub.mode = "rate_limited"
        with pytest.raises(anthropic.RateLimitError):
            ask_claude(client)
    assert count(priced) == 0


def test_a_message_without_usage_is_returned_and_logged_not_recorded(
    priced: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with StubProviders(mode="no_usage") as stub:
        client = track(claude_client(stub), priced, "anthropic")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            message = ask_claude(client)
    assert message.id == "msg_01HCDu5LRGeP2o7s2xGmxyx8"
    assert count(priced) == 0
    assert "could not record a message for anthropic" in caplog.text and "no usage block" in caplog.text


def test_a_bad_usage_block_is_logged_with_its_field_and_the_message_still_returned(
    priced: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    usage = dict(ANTHROPIC_USAGE, cache_read_input_tokens=-5)
    with StubProviders(anthropic_usage=usage) as stub:
        client = track(claude_client(stub), priced, "anthropic")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            message = ask_claude(client)
    assert message.usage.cache_read_input_tokens == -5  # unchanged, as the provider sent it
    assert count(priced) == 0
    assert "usage.cache_read_input_tokens: -5 is negative; nothing recorded" in caplog.text


def test_a_broken_database_never_breaks_an_anthropic_call(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    no_tables = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with StubProviders() as stub:
        client = track(claude_client(stub), no_tables, "anthropic")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            message = ask_claude(client)
    assert message.id == "msg_01HCDu5LRGeP2o7s2xGmxyx8"
    assert "could not record a message" in caplog.text
    no_tables.dispose()


def test_a_streamed_message_is_passed_through_and_logged_not_recorded(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict] = []

    class Messages:
        def create(self, **kwargs: object) -> str:
            calls.append(kwargs)
            return "a stream"

    class Client:
        messages = Messages()

    client = track(Client(), engine, "anthropic")
    with caplog.at_level(logging.INFO, logger="core.tracking"):
        assert client.messages.create(model=CLAUDE, max_tokens=5, messages=[], stream=True) == "a stream"
    assert calls and count(engine) == 0
    assert "streaming messages are not recorded" in caplog.text


# OpenAI Responses


def test_an_openai_response_is_recorded_with_cached_and_reasoning_tokens(priced: Engine) -> None:
    with StubProviders(answered_model="gpt-5-2025-08-07") as stub:
        client = openai_client(stub)
        track(client, priced, "openai", user="ana")
        response = ask_gpt(client)
    assert isinstance(response, openai.types.responses.Response)
    assert response.output_text == "2 + 2 is 4." and response.usage is not None
    assert stub.requests[0].path == "/v1/responses"
    assert stub.requests[0].headers["authorization"] == "Bearer test-token"
    [row] = logged(priced)
    assert (row.provider, row.model, row.request_id, row.user_id) == (
        "openai",
        GPT,
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "ana",
    )
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens, row.reasoning_tokens) == (
        10000,
        8000,
        2000,
        1500,
    )
    assert row.service_tier == "standard"  # OpenAI's "default"
    # the example: 2000 * 1.25e-6 + 8000 * 0.125e-6 + 2000 * 10e-6
    assert row.cost_total == Decimal("0.0235")


def test_a_flex_response_records_the_tier_it_was_served_at(priced: Engine) -> None:
    with StubProviders(service_tier="flex") as stub:
        client = track(openai_client(stub), priced, "openai")
        client.responses.create(model=GPT, input="2+2?", service_tier="flex")
    [row] = logged(priced)
    assert row.service_tier == "flex"


def test_one_openai_client_records_both_chat_completions_and_responses(priced: Engine) -> None:
    from stub_openai import StubOpenAI

    with StubProviders() as providers, StubOpenAI(response_id="chatcmpl-both") as chat_stub:
        client = track(openai_client(providers), priced, "openai")
        ask_gpt(client)
        # the same wrapped client, pointed at the chat stub for its chat call
        client.base_url = chat_stub.base_url  # type: ignore[assignment]
        client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "2+2?"}])
    rows = logged(priced)
    assert [(r.request_id, r.input_tokens, r.output_tokens) for r in rows] == [
        ("resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", 10000, 2000),
        ("chatcmpl-both", 1000, 500),
    ]


def test_a_response_without_usage_is_returned_and_logged_not_recorded(
    priced: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with StubProviders(mode="no_usage") as stub:
        client = track(openai_client(stub), priced, "openai")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            response = ask_gpt(client)
    assert response.output_text == "2 + 2 is 4."
    assert count(priced) == 0
    assert "could not record a response for openai" in caplog.text


def test_an_openai_error_on_responses_reaches_the_caller_and_records_nothing(priced: Engine) -> None:
    with StubProviders(mode="unauthorized") as stub:
        client = track(openai_client(stub), priced, "openai")
        with pytest.raises(openai.AuthenticationError):
            ask_gpt(client)
    assert count(priced) == 0


# Async clients: the answer is awaited by the caller, then recorded


def test_async_anthropic_and_openai_clients_are_recorded_once_awaited(priced: Engine) -> None:
    import asyncio

    async def both(stub: StubProviders) -> tuple[anthropic.types.Message, openai.types.responses.Response]:
        claude = anthropic.AsyncAnthropic(base_url=stub.anthropic_url, api_key="k", max_retries=0, timeout=5)
        gpt = openai.AsyncOpenAI(base_url=stub.openai_url, api_key="k", max_retries=0, timeout=5)
        track(claude, priced, "anthropic", project="async-app")
        track(gpt, priced, "openai", project="async-app")
        message = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        response = await gpt.responses.create(model=GPT, input="hi")
        return message, response

    with StubProviders() as stub:
        message, response = asyncio.run(both(stub))
    assert isinstance(message, anthropic.types.Message) and isinstance(response, openai.types.responses.Response)
    rows = logged(priced)
    assert [(r.provider, r.request_id, r.input_tokens, r.project) for r in rows] == [
        ("anthropic", "msg_01HCDu5LRGeP2o7s2xGmxyx8", 1532, "async-app"),
        ("openai", "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", 10000, "async-app"),
    ]


# track_completion reads every shape


def test_track_completion_reads_a_gemini_response_with_thoughts(engine: Engine) -> None:
    add_price(engine, "google", "gemini-2.5-pro", input_token_cost="0.00000125", output_token_cost="0.00001")
    response = {
        "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 1104, "thoughtsTokenCount": 1290},
        "modelVersion": "gemini-2.5-pro",
        "responseId": "mXqJaKWDEtqOz7IPsu2xwAY",
    }
    tracked = track_completion(engine, response, "google")
    assert (tracked.call.model, tracked.call.request_id) == ("gemini-2.5-pro", "mXqJaKWDEtqOz7IPsu2xwAY")
    [row] = logged(engine)
    assert (row.input_tokens, row.output_tokens, row.reasoning_tokens) == (11, 2394, 1290)
    assert row.cost_total == Decimal("0.02395375")  # 11 * 1.25e-6 + 2394 * 1e-5


def test_track_completion_reads_an_anthropic_sdk_message(priced: Engine) -> None:
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_sdk",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 3,
                "cache_creation_input_tokens": 418,
                "cache_read_input_tokens": 1111,
                "output_tokens": 7,
            },
        }
    )
    tracked = track_completion(priced, message, "anthropic", project="batch-job")
    assert (tracked.call.input_tokens, tracked.call.cached_input_tokens, tracked.call.cache_write_tokens) == (
        1532,
        1111,
        418,
    )
    assert tracked.call.project == "batch-job" and tracked.call.request_id == "msg_sdk"


def test_a_bad_project_is_refused_when_wrapping(engine: Engine) -> None:
    client = anthropic.Anthropic(api_key="x", base_url="http://127.0.0.1:9")
    with pytest.raises(TrackingError, match="^project: "):
        track(client, engine, "anthropic", project="p" * 201)
    with pytest.raises(TrackingError, match="^provider: "):
        track(client, engine, " ")
