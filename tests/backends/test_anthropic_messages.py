"""The native Anthropic client: wire format, streaming, prompt caching, errors."""

from __future__ import annotations

import anthropic
import msgspec
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest
from open_strawberry.backends.anthropic_messages import anthropic_body
from open_strawberry.errors import BadRequestError, OverloadedError, RateLimitedError, StreamError
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from tests.canned import Canned, open_canned_server, sse

SYSTEM = "You are a careful reasoner. Take one small step per turn. " * 20
QUESTION = "How many 'r's are in 'strawberry'?"


def request(*turns: str) -> ChatRequest:
    roles = ("user", "assistant")
    return ChatRequest(system=SYSTEM, max_tokens=300,
                       messages=tuple(ChatMessage(role=roles[i % 2], content=t) for i, t in enumerate(turns)))


@pytest.mark.parametrize("stream", [True, False])
async def test_text_and_usage_match_the_official_sdk(mock_server: MockServer, stream: bool) -> None:
    async with AnthropicMessagesBackend(base_url=mock_server.url, model="claude-mock", prompt_cache=False) as backend:
        deltas: list[str] = []
        completion = await backend.complete(request(QUESTION), on_delta=deltas.append, stream=stream)
    async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="x") as client:
        reference = await client.messages.create(model="claude-mock", max_tokens=300, system=SYSTEM,
                                                 messages=[{"role": "user", "content": QUESTION}])
    assert reference.content[0].type == "text"
    assert completion.text == reference.content[0].text
    assert "".join(deltas) == completion.text
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == reference.usage.input_tokens
    assert completion.usage.output_tokens == reference.usage.output_tokens
    assert completion.model == "claude-mock"
    if stream:
        assert completion.timings.ttft_s is not None
        assert len(completion.timings.chunk_gaps_s) == len(deltas) - 1


def test_cache_breakpoints_on_the_system_prompt_and_the_two_newest_user_turns() -> None:
    body = anthropic_body(request("q1", "a1", "q2", "a2", "q3"), "m", prompt_cache=True, stream=True)
    marked = [block for turn in body["messages"] for block in turn["content"] if "cache_control" in block]
    assert [block["text"] for block in marked] == ["q2", "q3"]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert len(marked) + 1 <= 4
    plain = anthropic_body(request("q1"), "m", prompt_cache=False, stream=False)
    assert "cache_control" not in msgspec.json.encode(plain).decode()
    assert "stream" not in plain


def test_consecutive_turns_of_one_role_are_merged_and_system_messages_lifted() -> None:
    messages = (ChatMessage(role="user", content="a"), ChatMessage(role="user", content="b"),
                ChatMessage(role="system", content="extra"))
    req = ChatRequest(system="S", messages=messages)
    body = anthropic_body(req, "m", prompt_cache=False, stream=False)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                             {"type": "text", "text": "b"}]}]
    assert [b["text"] for b in body["system"]] == ["S", "extra"]


async def test_a_three_turn_conversation_reads_its_prefix_from_the_cache(mock_server: MockServer) -> None:
    turns = [QUESTION]
    usages = []
    async with AnthropicMessagesBackend(base_url=mock_server.url, model="claude-mock") as backend:
        for _ in range(3):
            completion = await backend.complete(request(*turns))
            usages.append(completion.usage)
            turns += [completion.text, "Next step?"]
    assert usages[0].cache_read_tokens == 0
    assert usages[0].cache_write_tokens > 0
    assert usages[1].cache_read_tokens > 0
    assert usages[2].cache_read_tokens > usages[1].cache_read_tokens
    for usage in usages:
        assert usage.input_tokens >= usage.cache_read_tokens + usage.cache_write_tokens
    # turn two re-reads everything turn one wrote
    assert usages[1].cache_read_tokens == usages[0].cache_write_tokens


async def test_without_prompt_caching_nothing_is_read_from_the_cache(mock_server: MockServer) -> None:
    async with AnthropicMessagesBackend(base_url=mock_server.url, model="m", prompt_cache=False) as backend:
        for _ in range(2):
            usage = (await backend.complete(request(QUESTION))).usage
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (0, 0)


async def test_an_overloaded_error_event_mid_stream_is_retryable() -> None:
    async with open_mock_server(MockConfig(error_after_chunks=2)) as server, AnthropicMessagesBackend(
            base_url=server.url, model="m") as backend:
        with pytest.raises(OverloadedError, match="Overloaded") as info:
            await backend.complete(request(QUESTION))
    assert info.value.retryable


async def test_pings_and_unknown_events_are_skipped_and_a_missing_stop_is_an_error() -> None:
    events = [
        *sse('{"type":"message_start","message":{"model":"m","usage":{"input_tokens":7,"output_tokens":1}}}',
             event="message_start"),
        *sse('{"type":"ping"}', event="ping"),
        *sse('{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}'),
        *sse('{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}'),
        *sse('{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}'),
        *sse('{"type":"some_future_event"}'),
        *sse('{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}'),
    ]
    async with open_canned_server(Canned(chunks=[*events, *sse('{"type":"message_stop"}')])) as server, \
            AnthropicMessagesBackend(base_url=server.url, model="m") as backend:
        completion = await backend.complete(request(QUESTION))
    assert completion.text == "Hi"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (7, 3)
    async with open_canned_server(Canned(chunks=events)) as server, AnthropicMessagesBackend(
            base_url=server.url, model="m") as backend:
        with pytest.raises(StreamError, match="before message_stop"):
            await backend.complete(request(QUESTION))


@pytest.mark.parametrize(("status", "kind", "error"), [(400, "invalid_request_error", BadRequestError),
                                                        (429, "rate_limit_error", RateLimitedError),
                                                        (529, "overloaded_error", OverloadedError)])
async def test_error_bodies_map_to_typed_errors(status: int, kind: str, error: type[Exception]) -> None:
    body = msgspec.json.encode({"type": "error", "error": {"type": kind, "message": f"{kind} happened"}})
    canned = Canned(status=status, headers={"content-type": "application/json", "request-id": "req_7",
                                            "retry-after": "3"}, chunks=[body])
    async with open_canned_server(canned) as server, AnthropicMessagesBackend(
            base_url=server.url, model="m") as backend:
        with pytest.raises(error, match=f"{kind} happened") as info:
            await backend.complete(request(QUESTION))
    assert info.value.request_id == "req_7"  # type: ignore[attr-defined]
    assert info.value.retry_after == 3.0  # type: ignore[attr-defined]


async def test_headers_carry_the_key_and_the_api_version() -> None:
    async with open_mock_server(MockConfig(api_key="sk-ant-right")) as server:
        from open_strawberry.backends import create_backend

        backend = create_backend(f"anthropic:claude@{server.url}/v1", environ={"ANTHROPIC_API_KEY": "sk-ant-right"})
        try:
            assert (await backend.complete(request(QUESTION))).text
        finally:
            await backend.aclose()
