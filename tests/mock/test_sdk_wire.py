"""The official SDKs talk to the mock server: proof that it speaks the real wire formats."""

from __future__ import annotations

import anthropic
import openai
import pytest

from open_strawberry.backends.tokens import count_tokens
from open_strawberry.mock import MockConfig, MockServer, Reasoner, open_mock_server

QUESTION = "How many 'r's are in 'strawberry'?"


def expected_reply(question: str = QUESTION, seed: int | None = None, system: str = "") -> str:
    config = MockConfig()
    return Reasoner(accuracy=config.accuracy, confident_after=config.confident_after,
                    seed=config.seed).reply(system, [("user", question)], seed)


def prompt_tokens(*texts: str) -> int:
    return sum(count_tokens(t) + 4 for t in texts) + 2


@pytest.mark.parametrize("flavor", ["openai", "ollama", "llamacpp"])
async def test_openai_sdk_non_streamed(flavor: str) -> None:
    async with open_mock_server(MockConfig(flavor=flavor)) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        response = await client.chat.completions.create(
            model="mock-reasoner", messages=[{"role": "user", "content": QUESTION}], seed=7)
    text = expected_reply(seed=7)
    assert response.choices[0].message.content == text
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == prompt_tokens(QUESTION)
    assert response.usage.completion_tokens == count_tokens(text)
    assert response.model == "mock-reasoner"


@pytest.mark.parametrize("flavor", ["openai", "ollama", "llamacpp"])
async def test_openai_sdk_streamed_with_usage(flavor: str) -> None:
    config = MockConfig(flavor=flavor, tokens_per_chunk=3, keepalive_every=2)
    async with open_mock_server(config) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="mock-reasoner", messages=[{"role": "system", "content": "Be careful."},
                                             {"role": "user", "content": QUESTION}],
            stream=True, stream_options={"include_usage": True})
        parts, usages, finishes = [], [], []
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
            if chunk.usage is not None:
                usages.append(chunk.usage)
    text = expected_reply(system="Be careful.")
    assert "".join(parts) == text
    assert finishes == ["stop"]
    if flavor == "llamacpp":
        assert usages == []  # llama.cpp's server sends no usage chunk
    else:
        assert len(usages) == 1
        assert usages[0].prompt_tokens == prompt_tokens("Be careful.", QUESTION)
        assert usages[0].completion_tokens == count_tokens(text)


async def test_openai_sdk_lists_models(mock_server: MockServer) -> None:
    async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key="test") as client:
        models = [model.id async for model in client.models.list()]
    assert models == ["mock-reasoner"]


async def test_openai_sdk_sees_a_wrong_key_as_an_authentication_error() -> None:
    async with open_mock_server(MockConfig(api_key="right")) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_anthropic_sdk_non_streamed(mock_server: MockServer) -> None:
    async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="test", max_retries=0) as client:
        message = await client.messages.create(
            model="mock-reasoner", max_tokens=200, system="Be careful.",
            messages=[{"role": "user", "content": QUESTION}])
    text = expected_reply(system="Be careful.")
    assert message.content[0].type == "text"
    assert message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == count_tokens("Be careful.") + count_tokens(QUESTION) + 4 + 2
    assert message.usage.output_tokens == count_tokens(text)
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (0, 0)


async def test_anthropic_sdk_streamed(mock_server: MockServer) -> None:
    async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="test", max_retries=0) as client:
        async with client.messages.stream(model="mock-reasoner", max_tokens=200,
                                          messages=[{"role": "user", "content": QUESTION}]) as stream:
            deltas = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    text = expected_reply()
    assert "".join(deltas) == text
    assert len(deltas) == count_tokens(text)  # one token per chunk by default
    assert final.usage.output_tokens == count_tokens(text)
    assert final.stop_reason == "end_turn"


async def test_anthropic_sdk_reports_cache_usage_and_max_tokens(mock_server: MockServer) -> None:
    system = [{"type": "text", "text": "You solve puzzles. " * 40, "cache_control": {"type": "ephemeral"}}]
    async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="test", max_retries=0) as client:
        first = await client.messages.create(model="m", max_tokens=5, system=system,  # type: ignore[arg-type]
                                             messages=[{"role": "user", "content": QUESTION}])
        second = await client.messages.create(model="m", max_tokens=5, system=system,  # type: ignore[arg-type]
                                              messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert first.usage.cache_creation_input_tokens == count_tokens("You solve puzzles. " * 40)
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == count_tokens("You solve puzzles. " * 40)
    assert second.usage.cache_creation_input_tokens == 0
    assert first.stop_reason == "max_tokens"
    assert first.usage.output_tokens == 5


async def test_anthropic_sdk_lists_models_and_maps_errors() -> None:
    async with open_mock_server(MockConfig(api_key="right")) as server:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key="right") as client:
            assert [m.id async for m in client.models.list()] == ["mock-reasoner"]
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key="wrong", max_retries=0) as client:
            with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
                await client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


async def test_anthropic_sdk_sees_a_mid_stream_error_event() -> None:
    async with open_mock_server(MockConfig(error_after_chunks=2)) as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="test", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            async with client.messages.stream(model="m", max_tokens=100,
                                              messages=[{"role": "user", "content": QUESTION}]) as stream:
                async for _ in stream.text_stream:
                    pass
