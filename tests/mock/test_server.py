"""Mock server behaviour the SDK tests do not cover: pacing, limits, bad requests, caching."""

from __future__ import annotations

import aiohttp
import msgspec

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, OpenAIChatBackend
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from open_strawberry.tokens import count_tokens

REQUEST = ChatRequest(messages=(ChatMessage(role="user", content="How many r's are in strawberry?"),))


async def test_streams_are_paced_by_the_latency_model() -> None:
    config = MockConfig(ttft_s=0.1, tokens_per_s=400, tokens_per_chunk=4)
    async with open_mock_server(config) as server, OpenAIChatBackend(base_url=server.openai_base_url,
                                                                      model="m") as backend:
        completion = await backend.complete(REQUEST)
    tokens = count_tokens(completion.text)
    assert completion.timings.ttft_s is not None and completion.timings.ttft_s >= 0.1
    # every chunk after the first waits for its tokens at 400 tokens/s
    assert completion.timings.e2e_s >= 0.1 + (tokens - 4) / 400 * 0.9
    assert len(completion.timings.chunk_gaps_s) == -(-tokens // 4) - 1


async def test_max_tokens_and_stop_sequences_cut_the_reply(mock_server: MockServer) -> None:
    async with OpenAIChatBackend(base_url=mock_server.openai_base_url, model="m") as backend:
        cut = await backend.complete(ChatRequest(messages=REQUEST.messages, max_tokens=4))
        stopped = await backend.complete(ChatRequest(messages=REQUEST.messages, stop=(":",)))
    assert (cut.finish_reason, cut.usage.output_tokens) == ("length", 4)
    assert stopped.text == 'Letters 1-3 of "strawberry" are "s", "t", "r"'


async def test_bad_requests_get_the_providers_error_bodies(mock_server: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{mock_server.url}/v1/chat/completions", data=b'{"messages": 3}') as response:
            body = msgspec.json.decode(await response.read())
            assert response.status == 400
            assert body["error"]["type"] == "invalid_request_error"
        async with session.post(f"{mock_server.url}/v1/messages", data=b'{"model": "m", "messages": []}') as response:
            body = msgspec.json.decode(await response.read())
            assert response.status == 400
            assert body["type"] == "error"
            assert "max_tokens" in body["error"]["message"]


async def test_the_prompt_cache_expires_after_its_time_to_live() -> None:
    request = ChatRequest(system="Long shared instructions. " * 30, messages=REQUEST.messages)
    async with open_mock_server(MockConfig(cache_ttl_s=0.0)) as server, AnthropicMessagesBackend(
            base_url=server.url, model="m") as backend:
        first = await backend.complete(request)
        second = await backend.complete(request)
    assert first.usage.cache_write_tokens > 0
    assert second.usage.cache_read_tokens == 0  # expired at once
    assert second.usage.cache_write_tokens == first.usage.cache_write_tokens
