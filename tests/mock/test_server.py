"""Mock server behaviour the SDK tests do not cover: pacing, limits, bad requests, caching."""

from __future__ import annotations

import aiohttp
import msgspec
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, OpenAIChatBackend
from open_strawberry.backends.tokens import count_tokens
from open_strawberry.mock import MockConfig, MockServer, open_mock_server

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


async def test_rate_limits_come_with_the_openai_headers_and_429_body() -> None:
    from open_strawberry.errors import RateLimitedError

    async with open_mock_server(MockConfig(rpm=3, tpm=100_000)) as server, OpenAIChatBackend(
            base_url=server.openai_base_url, model="m") as backend:
        remaining = []
        for _ in range(3):
            completion = await backend.complete(REQUEST)
            assert completion.rate_limits is not None and completion.rate_limits.requests is not None
            remaining.append(completion.rate_limits.requests.remaining)
            assert completion.rate_limits.requests.limit == 3
            assert completion.rate_limits.tokens is not None and completion.rate_limits.tokens.limit == 100_000
        with pytest.raises(RateLimitedError, match=r"Rate limit reached for requests per min \(RPM\): Limit 3") as info:
            await backend.complete(REQUEST)
    assert remaining == [2, 1, 0]
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 20.5
    assert info.value.rate_limits.requests.remaining == 0
    assert server.rate_limited == 1


async def test_anthropic_budgets_come_with_anthropic_headers() -> None:
    from open_strawberry.errors import RateLimitedError

    async with open_mock_server(MockConfig(input_tpm=10_000, output_tpm=50)) as server, AnthropicMessagesBackend(
            base_url=server.url, model="m", prompt_cache=False) as backend:
        completion = await backend.complete(REQUEST)
        limits = completion.rate_limits
        assert limits is not None and limits.input_tokens is not None and limits.output_tokens is not None
        assert (limits.input_tokens.limit, limits.output_tokens.limit) == (10_000, 50)
        assert limits.output_tokens.remaining == 50 - completion.usage.output_tokens
        assert limits.output_tokens.reset_s is not None and limits.output_tokens.reset_s > 0
        with pytest.raises(RateLimitedError, match="rate limit of 50 output_tokens"):
            await backend.complete(REQUEST)


@pytest.mark.parametrize(
    ("fault", "error"),
    [("http_500", "ServerError"), ("http_503", "OverloadedError"), ("http_529", "OverloadedError"),
     ("http_429", "RateLimitedError"), ("http_429_bare", "RateLimitedError"), ("drop_mid_stream", "StreamError"),
     ("truncated_sse", "StreamError"), ("malformed_chunk", "StreamError"), ("stall", "BackendTimeoutError")],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_each_injected_fault_reaches_the_client_as_its_typed_error(fault: str, error: str, stream: bool) -> None:
    from open_strawberry.errors import BackendError
    from open_strawberry.mock import FaultRates

    config = MockConfig(faults=FaultRates(**{fault: 1.0}), stall_s=5.0, fault_retry_after_s=0.25)
    async with open_mock_server(config) as server:
        for backend in (OpenAIChatBackend(base_url=server.openai_base_url, model="m", timeout_s=0.3),
                        AnthropicMessagesBackend(base_url=server.url, model="m", timeout_s=0.3)):
            async with backend:
                with pytest.raises(BackendError) as info:
                    await backend.complete(REQUEST, stream=stream)
            if fault == "drop_mid_stream" and not stream:
                assert info.value.retryable  # the connection is gone before any answer
                continue
            assert type(info.value).__name__ == error, (backend, info.value)
            assert info.value.retryable
            if fault == "http_429":
                assert info.value.retry_after == 0.25
            if fault == "http_429_bare":
                assert info.value.retry_after is None
        assert server.faults[fault] == 2


@pytest.mark.parametrize("flavor", ["openai", "llamacpp", "ollama"])
async def test_an_interrupted_stream_is_retried_not_recorded_empty(flavor: str) -> None:
    """The mock's copy of llama-cpp-python cutting a stream off: the role chunk, then [DONE]
    (OpenAI) or nothing (Anthropic). The client refuses it as a StreamError; a retry succeeds."""
    from open_strawberry.errors import StreamError
    from open_strawberry.limiter import LimitedBackend, Limiter, RetryPolicy
    from open_strawberry.mock import FaultRates

    async with open_mock_server(MockConfig(faults=FaultRates(interrupted=1.0), flavor=flavor)) as server:  # type: ignore[arg-type]
        for backend in (OpenAIChatBackend(base_url=server.openai_base_url, model="m"),
                        AnthropicMessagesBackend(base_url=server.url, model="m")):
            async with backend:
                with pytest.raises(StreamError):
                    await backend.complete(REQUEST)
                # non-streamed replies are not cut
                assert (await backend.complete(REQUEST, stream=False)).text
    async with open_mock_server(MockConfig(faults=FaultRates(interrupted=0.5), seed=3, flavor=flavor)) as server:  # type: ignore[arg-type]
        async with LimitedBackend(OpenAIChatBackend(base_url=server.openai_base_url, model="m"), Limiter(),
                                  RetryPolicy(max_attempts=20, initial_backoff_s=0.001)) as limited:
            for _ in range(10):
                completion = await limited.complete(REQUEST)
                assert completion.text and completion.finish_reason is not None
        assert server.faults["interrupted"] >= 3
