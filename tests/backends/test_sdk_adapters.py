"""The SDK adapters put a user's own client behind the Backend protocol."""

from __future__ import annotations

import anthropic
import openai
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicSDKBackend, Backend, ChatRequest, OpenAIChatBackend, OpenAISDKBackend
from open_strawberry.errors import AuthenticationError, BackendClosedError, BackendConnectionError
from open_strawberry.mock import MockConfig, MockServer, open_mock_server

REQUEST = ChatRequest(system="Be careful.", messages=(ChatMessage(role="user", content="What is 6 * 7 + 1?"),), seed=1)


@pytest.mark.parametrize("stream", [True, False])
async def test_the_openai_adapter_matches_the_native_client(mock_server: MockServer, stream: bool) -> None:
    async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key="x") as client:
        adapter = OpenAISDKBackend(client, "mock-reasoner")
        assert isinstance(adapter, Backend)
        deltas: list[str] = []
        via_sdk = await adapter.complete(REQUEST, on_delta=deltas.append, stream=stream)
    async with OpenAIChatBackend(base_url=mock_server.openai_base_url, model="mock-reasoner") as native:
        direct = await native.complete(REQUEST)
    assert via_sdk.text == direct.text == "".join(deltas)
    assert via_sdk.usage == direct.usage
    assert via_sdk.finish_reason == "stop"
    assert via_sdk.timings.ttft_s is not None


@pytest.mark.parametrize("stream", [True, False])
async def test_the_anthropic_adapter_reports_text_usage_and_cache(mock_server: MockServer, stream: bool) -> None:
    async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="x") as client:
        adapter = AnthropicSDKBackend(client, "claude-mock")
        first = await adapter.complete(REQUEST, stream=stream)
        second = await adapter.complete(REQUEST, stream=stream)
    assert first.text.startswith("Next operation: 6 * 7 = 42.")
    assert first.finish_reason == "stop"
    assert first.usage.cache_write_tokens > 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.input_tokens == first.usage.input_tokens


async def test_sdk_errors_are_translated() -> None:
    async with open_mock_server(MockConfig(api_key="right")) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="wrong") as client:
            with pytest.raises(AuthenticationError) as info:
                await OpenAISDKBackend(client, "m").complete(REQUEST)
            assert info.value.status == 401
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key="wrong") as aclient:
            with pytest.raises(AuthenticationError):
                await AnthropicSDKBackend(aclient, "m").complete(REQUEST)
    async with openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x") as client:
        with pytest.raises(BackendConnectionError):
            await OpenAISDKBackend(client, "m").complete(REQUEST)


async def test_an_adapter_never_closes_the_client_it_was_handed(mock_server: MockServer) -> None:
    async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key="x") as client, \
            anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="x") as aclient:
        adapters: list[OpenAISDKBackend | AnthropicSDKBackend] = [OpenAISDKBackend(client, "m"),
                                                                   AnthropicSDKBackend(aclient, "m")]
        for adapter in adapters:
            await adapter.complete(REQUEST)
            await adapter.aclose()
            await adapter.aclose()  # closing twice is harmless
            with pytest.raises(BackendClosedError):
                await adapter.complete(REQUEST)  # a closed adapter refuses calls
        assert not client.is_closed() and not aclient.is_closed()
        again = await OpenAISDKBackend(client, "m").complete(REQUEST)  # the user's clients still work
        assert again.text
        assert (await AnthropicSDKBackend(aclient, "m").complete(REQUEST)).text
