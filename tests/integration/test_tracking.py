"""Tracking real completions: the usage block becomes a priced call, once per response id."""

from __future__ import annotations

import logging
from decimal import Decimal

import openai
import pytest
from sqlalchemy import Engine, func, select
from stub_openai import StubOpenAI

from core.storage.engine import make_engine
from core.storage.tables import UsageRecord
from core.tracking import TrackingError, read_usage, track, track_completion

MODEL = "openai/gpt-oss-120b:groq"


def logged(engine: Engine) -> list[UsageRecord]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(UsageRecord).order_by(UsageRecord.id)))


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()


def completion(**usage: object) -> dict:
    return {"id": "chatcmpl-1", "model": "openai/gpt-oss-120b", "usage": usage}


def test_a_dict_response_is_recorded_at_the_seed_price_under_the_requested_model(engine: Engine) -> None:
    tracked = track_completion(
        engine, completion(prompt_tokens=1000, completion_tokens=500), "huggingface", model=MODEL, user="ana"
    )
    [row] = logged(engine)
    assert (row.id, row.request_id, row.model, row.user_id) == (tracked.recorded.id, "chatcmpl-1", MODEL, "ana")
    assert (row.input_tokens, row.output_tokens, row.matched_by) == (1000, 500, "exact")
    assert row.cost_total == Decimal("0.0025")


def test_the_same_response_id_twice_is_billed_once(engine: Engine) -> None:
    response = completion(prompt_tokens=1000, completion_tokens=500)
    first = track_completion(engine, response, "huggingface", model=MODEL)
    second = track_completion(engine, response, "huggingface", model=MODEL)
    assert second.recorded.duplicate and second.recorded.id == first.recorded.id
    assert count(engine) == 1


def test_cached_tokens_are_read_from_prompt_tokens_details(engine: Engine) -> None:
    usage = read_usage(completion(prompt_tokens=100, completion_tokens=5, prompt_tokens_details={"cached_tokens": 40}))
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (100, 5, 40)
    assert usage.request_id == "chatcmpl-1" and usage.model == "openai/gpt-oss-120b"


def test_the_response_model_is_used_when_none_is_given(engine: Engine) -> None:
    track_completion(engine, completion(prompt_tokens=1000, completion_tokens=500), "huggingface")
    [row] = logged(engine)
    assert row.model == "openai/gpt-oss-120b" and row.matched_by == "short"
    assert row.cost_total == Decimal("0.0025")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"id": "x", "model": MODEL}, "usage: the response has no usage block"),
        ({"id": "x", "usage": None}, "usage: the response has no usage block"),
        ({"id": "x", "usage": "lots"}, "usage: 'lots' is not a usage block"),
        (completion(completion_tokens=5), "usage.prompt_tokens: missing"),
        (completion(prompt_tokens=10), "usage.completion_tokens: missing"),
        (completion(prompt_tokens="10", completion_tokens=5), "usage.prompt_tokens: '10' is not a whole number"),
        (completion(prompt_tokens=10, completion_tokens=-1), "usage.completion_tokens: -1 is negative"),
        (completion(prompt_tokens=10.5, completion_tokens=1), "usage.prompt_tokens: 10.5 is not a whole number"),
        (
            completion(prompt_tokens=10, completion_tokens=1, prompt_tokens_details={"cached_tokens": 11}),
            "cached_tokens: 11 is more than usage.prompt_tokens 10",
        ),
        (None, "response: None is not a chat completion"),
    ],
)
def test_a_missing_or_malformed_usage_block_records_nothing(engine: Engine, response: object, message: str) -> None:
    with pytest.raises(TrackingError, match="nothing recorded") as caught:
        track_completion(engine, response, "huggingface", model=MODEL)
    assert message in str(caught.value)
    assert count(engine) == 0


def test_a_bad_provider_is_named(engine: Engine) -> None:
    with pytest.raises(TrackingError, match="provider"):
        track_completion(engine, completion(prompt_tokens=1, completion_tokens=1), "   ", model=MODEL)
    assert count(engine) == 0


# The wrapper, with a real openai client against the stub server.


def client_for(stub: StubOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.base_url, api_key="test-token", max_retries=0, timeout=5)


def ask(client: object) -> object:
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}])  # type: ignore[attr-defined]


def test_a_wrapped_openai_client_records_each_completion_once_and_returns_it_unchanged(engine: Engine) -> None:
    with StubOpenAI(response_id="chatcmpl-wrap") as stub:
        client = client_for(stub)
        assert track(client, engine, "huggingface", user="app-1") is client
        response = ask(client)
        assert isinstance(response, openai.types.chat.ChatCompletion)
        assert response.id == "chatcmpl-wrap" and response.choices[0].message.content == "2 + 2 is 4."
        assert response.usage is not None and response.usage.prompt_tokens == 1000
        ask(client)  # the provider answers with the same id: a retry, not a second bill
    [row] = logged(engine)
    assert (row.provider, row.model, row.user_id, row.request_id) == ("huggingface", MODEL, "app-1", "chatcmpl-wrap")
    assert row.cost_total == Decimal("0.0025")
    assert stub.requests[0].headers["authorization"] == "Bearer test-token"


def test_wrapping_twice_records_once(engine: Engine) -> None:
    with StubOpenAI(response_id=None) as stub:  # no id, so only the wrapper itself can prevent a double count
        client = track(track(client_for(stub), engine, "huggingface"), engine, "huggingface")
        ask(client)
    [row] = logged(engine)
    assert row.request_id is None and row.cost_total == Decimal("0.0025")


def test_a_provider_error_reaches_the_caller_as_the_client_raised_it_and_records_nothing(engine: Engine) -> None:
    with StubOpenAI(mode="unauthorized") as stub:
        client = track(client_for(stub), engine, "huggingface")
        with pytest.raises(openai.AuthenticationError):
            ask(client)
        stub.mode = "rate_limited"
        with pytest.raises(openai.RateLimitError):
            ask(client)
    assert count(engine) == 0


def test_a_response_without_usage_is_returned_and_logged_not_recorded(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with StubOpenAI(mode="no_usage") as stub:
        client = track(client_for(stub), engine, "huggingface")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            response = ask(client)
    assert response.choices[0].message.content == "2 + 2 is 4."  # type: ignore[attr-defined]
    assert count(engine) == 0
    assert "could not record" in caplog.text and "no usage block" in caplog.text


def test_a_broken_database_never_breaks_the_callers_request(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    no_tables = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with StubOpenAI() as stub:
        client = track(client_for(stub), no_tables, "huggingface")
        with caplog.at_level(logging.WARNING, logger="core.tracking"):
            response = ask(client)
    assert response.id == "chatcmpl-stub-0001"  # type: ignore[attr-defined]
    assert "could not record" in caplog.text
    no_tables.dispose()


def test_a_streaming_completion_is_passed_through_and_not_recorded(engine: Engine) -> None:
    calls: list[dict] = []

    class Completions:
        def create(self, **kwargs: object) -> str:
            calls.append(kwargs)
            return "a stream"

    class Chat:
        completions = Completions()

    class Client:
        chat = Chat()

    client = track(Client(), engine, "openai")
    assert client.chat.completions.create(model="gpt-4o", messages=[], stream=True) == "a stream"
    assert calls and count(engine) == 0


def test_a_huggingface_inference_client_is_recorded_through_chat_completion_and_its_alias(engine: Engine) -> None:
    from huggingface_hub import InferenceClient
    from huggingface_hub.inference._generated.types import ChatCompletionOutput

    with StubOpenAI(response_id="hub-1") as stub:
        client = track(InferenceClient(base_url=stub.base_url, api_key="test-token"), engine, "huggingface", user="hub")
        returned = client.chat_completion([{"role": "user", "content": "hi"}], model=MODEL)
        assert isinstance(returned, ChatCompletionOutput)
        assert returned.id == "hub-1" and returned.usage.prompt_tokens == 1000
        stub.response_id = "hub-2"
        client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model=MODEL)
    rows = logged(engine)
    assert [(r.request_id, r.model, r.user_id, r.cost_total) for r in rows] == [
        ("hub-1", MODEL, "hub", Decimal("0.0025")),
        ("hub-2", MODEL, "hub", Decimal("0.0025")),
    ]
    assert [r.path for r in stub.requests] == ["/v1/chat/completions"] * 2


def test_something_that_is_not_a_chat_client_is_refused(engine: Engine) -> None:
    with pytest.raises(TrackingError, match="client: object has neither"):
        track(object(), engine, "openai")
