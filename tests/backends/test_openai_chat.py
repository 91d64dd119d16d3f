"""The native OpenAI-compatible client against the mock and against canned wire quirks."""

from __future__ import annotations

import socket

import msgspec
import openai
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend, Secret, create_backend
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    StreamError,
)
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from tests.canned import Canned, open_canned_server, sse

QUESTION = "What is (12 + 7) * 3 - 4?"
REQUEST = ChatRequest(system="Think in small steps.", messages=(ChatMessage(role="user", content=QUESTION),), seed=3)


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> bytes:
    delta = {} if content is None else {"content": content}
    return msgspec.json.encode({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


@pytest.mark.parametrize("stream", [True, False])
async def test_text_and_usage_match_the_official_sdk(mock_server: MockServer, stream: bool) -> None:
    async with OpenAIChatBackend(base_url=mock_server.openai_base_url, model="mock-reasoner",
                                 provider="vllm") as backend:
        deltas: list[str] = []
        completion = await backend.complete(REQUEST, on_delta=deltas.append, stream=stream)
    async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key="x") as client:
        reference = await client.chat.completions.create(
            model="mock-reasoner", seed=3, messages=[{"role": "system", "content": "Think in small steps."},
                                                     {"role": "user", "content": QUESTION}])
    assert reference.usage is not None
    assert completion.text == reference.choices[0].message.content
    assert "".join(deltas) == completion.text
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == reference.usage.prompt_tokens
    assert completion.usage.output_tokens == reference.usage.completion_tokens
    assert not completion.usage.estimated
    assert completion.model == "mock-reasoner"


async def test_llamacpp_stream_role_chunk_no_usage_chunk_and_timings() -> None:
    async with open_mock_server(MockConfig(flavor="llamacpp")) as server, OpenAIChatBackend(
            base_url=server.openai_base_url, model="m", provider="llamacpp") as backend:
        completion = await backend.complete(REQUEST)
    assert completion.text.startswith("Next operation: 12 + 7 = 19.")
    assert completion.usage.input_tokens == estimate_prompt_tokens(REQUEST.messages, REQUEST.system)
    assert completion.usage.output_tokens == count_tokens(completion.text)
    assert not completion.usage.estimated  # read from the timings object


async def test_no_usage_at_all_is_estimated_and_flagged() -> None:
    chunks = sse(chunk(), chunk("Hello"), chunk(" there", "stop"), "[DONE]")
    async with open_canned_server(Canned(chunks=chunks)) as server, OpenAIChatBackend(
            base_url=server.url, model="m") as backend:
        completion = await backend.complete(REQUEST)
    assert completion.text == "Hello there"
    assert completion.usage.estimated
    assert completion.usage.output_tokens == 2
    assert completion.usage.input_tokens == estimate_prompt_tokens(REQUEST.messages, REQUEST.system)


async def test_comments_several_tokens_per_chunk_and_a_missing_done_are_fine() -> None:
    body = [b": keep-alive\n\n", *sse(chunk("One two three")), b":ping\r\n\r\n",
            *sse(chunk(" four five", "stop"), chunk(finish=None, usage={"prompt_tokens": 9, "completion_tokens": 5},
                                                   choices=[]))]
    # the last event is split across two network writes
    body[-1:] = [body[-1][:17], body[-1][17:]]
    async with open_canned_server(Canned(chunks=body)) as server, OpenAIChatBackend(
            base_url=server.url, model="m") as backend:
        completion = await backend.complete(REQUEST)
    assert completion.text == "One two three four five"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (9, 5)
    assert len(completion.timings.chunk_gaps_s) == 1


async def test_the_request_body_follows_the_wire_format() -> None:
    chunks = sse(chunk("ok", "stop"), "[DONE]")
    async with open_canned_server(Canned(chunks=chunks)) as server:
        for provider, cap in (("openai", "max_completion_tokens"), ("vllm", "max_tokens")):
            async with OpenAIChatBackend(base_url=server.url, model="m", provider=provider,
                                         api_key=Secret("sk-test")) as backend:
                await backend.complete(ChatRequest(messages=REQUEST.messages, max_tokens=77, temperature=0.7,
                                                   stop=("###",), seed=5))
            body = msgspec.json.decode(server.requests[-1])
            assert body[cap] == 77
            assert body["stream_options"] == {"include_usage": True}
            assert (body["temperature"], body["stop"], body["seed"]) == (0.7, ["###"], 5)
            assert body["messages"] == [{"role": "user", "content": QUESTION}]


async def test_ttft_runs_from_send_to_the_first_content_not_the_role_chunk() -> None:
    config = MockConfig(flavor="llamacpp", ttft_s=0.3, tokens_per_s=200, tokens_per_chunk=2)
    async with open_mock_server(config) as server, OpenAIChatBackend(
            base_url=server.openai_base_url, model="m") as backend:
        completion = await backend.complete(REQUEST)
    timings = completion.timings
    assert timings.ttft_s is not None
    assert timings.ttft_s >= 0.3  # the role-only chunk came at once; content only after the delay
    chunks = -(-count_tokens(completion.text) // 2)
    assert len(timings.chunk_gaps_s) == chunks - 1  # one gap a content chunk, even for chunks read together
    assert timings.e2e_s >= timings.ttft_s + sum(timings.chunk_gaps_s) - 1e-9
    # the server paces every chunk after the first: the last cannot come sooner than this
    assert timings.e2e_s >= 0.3 + (chunks - 1) * 2 / 200 * 0.99


async def test_a_mid_stream_error_is_a_retryable_stream_error() -> None:
    async with open_mock_server(MockConfig(error_after_chunks=3)) as server, OpenAIChatBackend(
            base_url=server.openai_base_url, model="m") as backend:
        with pytest.raises(StreamError, match="error in stream: The server had an error") as info:
            await backend.complete(REQUEST)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("status", "headers", "error", "retryable"),
    [
        (400, {}, BadRequestError, False),
        (401, {}, AuthenticationError, False),
        (403, {}, AuthenticationError, False),
        (404, {}, ModelNotFoundError, False),
        (408, {}, ServerError, True),
        (409, {}, ServerError, True),
        (422, {}, BadRequestError, False),
        (429, {"retry-after-ms": "1500", "retry-after": "9"}, RateLimitedError, True),
        (500, {}, ServerError, True),
        (503, {"retry-after": "2"}, OverloadedError, True),
        (529, {"x-should-retry": "false"}, OverloadedError, True),
    ],
)
async def test_http_statuses_map_to_typed_errors(status: int, headers: dict[str, str], error: type[BackendError],
                                                 retryable: bool) -> None:
    body = msgspec.json.encode({"error": {"message": f"nope {status}", "type": "x", "param": None, "code": None}})
    canned = Canned(status=status, headers={"content-type": "application/json", "x-request-id": "req_42", **headers},
                    chunks=[body])
    async with open_canned_server(canned) as server, OpenAIChatBackend(base_url=server.url, model="m") as backend:
        with pytest.raises(error) as info:
            await backend.complete(REQUEST)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert info.value.request_id == "req_42"
    assert f"nope {status}" in str(info.value)
    if status == 429:
        assert info.value.retry_after == 1.5
    if status == 503:
        assert info.value.retry_after == 2.0
    if status == 529:
        assert info.value.should_retry is False


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (sse(chunk("half")) + [b'data: {"choices": [{"delta": {"content": "cut'], "in the middle of an event"),
        (sse(chunk("no end")), "without a finish reason"),
        (sse(b'{"choices": [oops]}'), "malformed JSON"),
        # llama-cpp-python cutting a stream off for the next request: the role chunk, then [DONE]
        (sse(chunk(), "[DONE]"), r"\[DONE\] came with no finish reason"),
        (sse(chunk("partial text"), "[DONE]"), r"\[DONE\] came with no finish reason"),
        (sse(chunk("given up", "abort"), "[DONE]"), "aborted the request"),
    ],
)
async def test_broken_streams_are_stream_errors(chunks: list[bytes], message: str) -> None:
    async with open_canned_server(Canned(chunks=chunks)) as server, OpenAIChatBackend(
            base_url=server.url, model="m") as backend:
        with pytest.raises(StreamError, match=message):
            await backend.complete(REQUEST)


@pytest.mark.parametrize(("finish", "message"), [(None, "no finish reason"),
                                                  ("abort", "aborted the request .finish reason 'abort'")])
async def test_a_whole_reply_that_did_not_finish_is_a_stream_error_not_a_turn(finish: str | None, message: str) -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "partial"}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
    canned = Canned(headers={"content-type": "application/json"}, chunks=[msgspec.json.encode(body)])
    async with open_canned_server(canned) as server, OpenAIChatBackend(base_url=server.url, model="m") as backend:
        with pytest.raises(StreamError, match=message) as info:
            await backend.complete(REQUEST, stream=False)
    assert info.value.retryable


async def test_a_stalled_stream_times_out() -> None:
    canned = Canned(chunks=sse(chunk("a"), chunk("b", "stop"), "[DONE]"), stall_after=1)
    async with open_canned_server(canned) as server, OpenAIChatBackend(
            base_url=server.url, model="m", timeout_s=0.2) as backend:
        with pytest.raises(BackendTimeoutError, match=r"nothing came for timeout_s=0\.2 s, the read timeout"):
            await backend.complete(REQUEST)


async def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OpenAIChatBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m") as backend:
        with pytest.raises(BackendConnectionError) as info:
            await backend.complete(REQUEST)
    assert info.value.retryable


async def test_the_key_is_never_shown(mock_server: MockServer) -> None:
    backend = create_backend(f"openai:gpt-test@{mock_server.openai_base_url}", environ={"OPENAI_API_KEY": "sk-secret1"})
    assert "sk-secret1" not in repr(backend)
    assert "sk-secret1" not in repr(vars(backend))
    assert "sk-secret1" not in str(vars(backend))


async def test_a_wrong_key_is_an_authentication_error() -> None:
    async with open_mock_server(MockConfig(api_key="sk-right")) as server:
        good = create_backend(f"openai:m@{server.openai_base_url}", environ={"OPENAI_API_KEY": "sk-right"})
        bad = create_backend(f"openai:m@{server.openai_base_url}", environ={"OPENAI_API_KEY": "sk-wrong"})
        try:
            assert (await good.complete(REQUEST)).text
            with pytest.raises(AuthenticationError):
                await bad.complete(REQUEST)
        finally:
            await good.aclose()
            await bad.aclose()


async def test_a_long_context_reply_in_one_huge_chunk_is_read_whole() -> None:
    big = "word " * 600_000  # a 3 MB chunk (600,000 tokens): far beyond aiohttp's default read buffer
    async with open_canned_server(Canned(chunks=sse(chunk(big), chunk(finish="stop"), "[DONE]"))) as server, \
            OpenAIChatBackend(base_url=server.url, model="m") as backend:
        completion = await backend.complete(msgspec.structs.replace(REQUEST, max_tokens=600_000))
    assert completion.text == big


async def test_a_reply_far_beyond_max_tokens_is_cut_off_not_read_whole() -> None:
    flood = sse(*[chunk("x" * 10_000) for _ in range(200)], chunk(finish="stop"), "[DONE]")  # 2 MB
    request = msgspec.structs.replace(REQUEST, max_tokens=100)
    async with open_canned_server(Canned(chunks=flood)) as server, OpenAIChatBackend(
            base_url=server.url, model="m") as backend:
        with pytest.raises(StreamError, match="far beyond what max_tokens=100 allows"):
            await backend.complete(request)
