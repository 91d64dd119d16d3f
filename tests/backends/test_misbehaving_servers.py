"""Careless and hostile servers: a web page where a stream was asked for, a reply that never
ends, a flood far beyond ``max_tokens``, an error that echoes the key. Each fails clearly and in
bounded time, and the key reaches no message, record or log line."""

from __future__ import annotations

import io
import random
import string
import sys
from pathlib import Path

import anyio
import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

from open_strawberry import ChatMessage, configure_logging
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, OpenAIChatBackend
from open_strawberry.backends.base import Secret
from open_strawberry.backends.http import HTTPBackend
from open_strawberry.errors import (
    AuthenticationError,
    BackendTimeoutError,
    ConfigurationError,
    FatalBackendError,
    RetryableBackendError,
    StreamError,
)
from open_strawberry.limiter import RetryPolicy, create_limited_backend
from open_strawberry.messages import ErrorInfo
from tests.canned import Canned, open_canned_server, sse
from tests.misbehaving import MisbehavingServer, open_misbehaving_server

REQUEST = ChatRequest(messages=(ChatMessage(role="user", content="What is 6 * 7?"),), max_tokens=16)
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def both_wire_formats(server: MisbehavingServer, **options: float) -> list[HTTPBackend]:
    return [OpenAIChatBackend(base_url=server.openai_base_url, model="m", provider="vllm", **options),
            AnthropicMessagesBackend(base_url=server.url, model="m", **options)]


# ------------------------------------------------------------------ not what was asked for


async def test_a_web_page_instead_of_an_event_stream_is_fatal_and_says_what_came() -> None:
    async with open_misbehaving_server("html") as server:
        for backend in both_wire_formats(server):
            async with backend:
                with anyio.fail_after(10), pytest.raises(FatalBackendError) as info:
                    await backend.complete(REQUEST)
            message = str(info.value)
            assert "not an event stream" in message
            assert "text/html; charset=utf-8" in message
            assert "'<!DOCTYPE html> <html lang=\"en\"> <head><meta charset=\"utf-8\"><title>Sign in" in message
            assert "Is the base URL right" in message and server.url in message
            assert "middle of an event" not in message
            assert not info.value.retryable and info.value.status == 200


async def test_a_web_page_is_not_retried() -> None:
    async with open_misbehaving_server("html") as server:
        async with create_limited_backend(f"vllm:m@{server.openai_base_url}") as backend:
            with anyio.fail_after(10), pytest.raises(FatalBackendError) as info:
                await backend.complete(REQUEST)
    assert info.value.attempts == 1
    assert server.requests == 1


async def test_a_web_page_instead_of_a_json_reply_is_fatal_too() -> None:
    async with open_misbehaving_server("html") as server:
        for backend in both_wire_formats(server):
            async with backend:
                with anyio.fail_after(10), pytest.raises(FatalBackendError, match="not JSON.*text/html"):
                    await backend.complete(REQUEST, stream=False)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json", "text/event-stream; charset=utf-8",
                                          "Text/Event-Stream"])
async def test_a_stream_with_a_sloppy_content_type_is_read_when_its_lines_are_sse(content_type: str | None) -> None:
    chunk = '{"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}'
    headers = {} if content_type is None else {"content-type": content_type}
    chunks = [b"\n", b": keep-alive\n\n", *sse(chunk, "[DONE]")]  # blank and comment lines first
    async with open_canned_server(Canned(headers=headers, chunks=chunks)) as server, OpenAIChatBackend(
            base_url=server.url, model="m") as backend:
        with anyio.fail_after(10):
            completion = await backend.complete(REQUEST)
    assert completion.text == "42"


async def test_a_json_error_sent_with_status_200_for_a_stream_keeps_its_message() -> None:
    body = b'{"error": {"message": "the model is loading", "type": "server_error"}}'
    canned = Canned(headers={"content-type": "application/json"}, chunks=[body])
    async with open_canned_server(canned) as server, OpenAIChatBackend(base_url=server.url, model="m") as backend:
        with anyio.fail_after(10), pytest.raises(RetryableBackendError, match="the model is loading"):
            await backend.complete(REQUEST)


# ------------------------------------------------------------------ never finishing


async def test_a_server_that_trickles_bytes_forever_fails_at_the_call_deadline() -> None:
    async with open_misbehaving_server("slow", pace_s=0.02) as server:
        # every read gets a byte well within timeout_s: only the total deadline can end the call
        for backend in both_wire_formats(server, timeout_s=30.0, call_timeout_s=0.5):
            async with backend:
                with anyio.fail_after(10), pytest.raises(BackendTimeoutError) as info:
                    await backend.complete(REQUEST)
            assert "call_timeout_s=0.5 s" in str(info.value)
            assert info.value.retryable


async def test_create_limited_backend_passes_the_call_deadline_on() -> None:
    async with open_misbehaving_server("slow", pace_s=0.02) as server:
        async with create_limited_backend(f"vllm:m@{server.openai_base_url}", call_timeout_s=0.3,
                                          retry=ONE_ATTEMPT) as backend:
            with anyio.fail_after(10), pytest.raises(BackendTimeoutError, match=r"call_timeout_s=0\.3 s"):
                await backend.complete(REQUEST)


# ------------------------------------------------------------------ far beyond max_tokens


@pytest.mark.parametrize("declare_length", [False, True])
async def test_a_non_streamed_body_far_beyond_max_tokens_is_cut_off(declare_length: bool) -> None:
    async with open_misbehaving_server("huge", declare_length=declare_length) as server:
        for backend in both_wire_formats(server):
            async with backend:
                with anyio.fail_after(30), pytest.raises(StreamError) as info:
                    await backend.complete(REQUEST, stream=False)
            assert "far beyond what max_tokens=16 allows" in str(info.value)
            assert "bytes" in str(info.value)


async def test_one_endless_event_of_a_stream_is_cut_off_not_buffered() -> None:
    async with open_misbehaving_server("huge") as server:
        for backend in both_wire_formats(server):
            async with backend:
                with anyio.fail_after(30), pytest.raises(StreamError, match="far beyond what max_tokens=16 allows"):
                    await backend.complete(REQUEST)


# ------------------------------------------------------------------ a key in an error body


def unusual_key() -> str:
    return "tok_" + "".join(random.choices(string.ascii_letters, k=30))


async def test_a_key_echoed_in_an_error_body_reaches_no_message_record_or_log(monkeypatch: pytest.MonkeyPatch) -> None:
    key = unusual_key()
    monkeypatch.setenv("MISBEHAVING_TEST_KEY", key)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging()
    try:
        async with open_misbehaving_server("echo-key") as server:
            for model, echoed in ((f"vllm:m@{server.openai_base_url}", "Incorrect API key provided: Bearer ***"),
                                  (f"mock-anthropic:m@{server.url}", "invalid x-api-key: ***")):
                async with create_limited_backend(model, api_key_env="MISBEHAVING_TEST_KEY",
                                                  retry=ONE_ATTEMPT) as backend:
                    with anyio.fail_after(10), pytest.raises(AuthenticationError) as info:
                        await backend.complete(REQUEST)
                error = info.value
                assert echoed in str(error)  # the server did echo it; the message masks it
                assert key not in str(error) and key not in repr(error.args)
                record = ErrorInfo.from_exception(error, actor="generator")
                assert key not in msgspec.json.encode(record).decode()
                with capture_logs() as logs:
                    structlog.get_logger().warning("trace_failed", error=f"{type(error).__name__}: {error}",
                                                   exc_info=error)
                assert logs and key not in repr(logs)
                structlog.get_logger().warning("trace_failed", error=f"{type(error).__name__}: {error}",
                                               exc_info=error)
    finally:
        structlog.reset_defaults()
    written = stderr.getvalue()
    assert "Incorrect API key provided" in written and "invalid x-api-key" in written
    assert key not in written


def test_an_error_record_masks_a_key_in_use_in_any_exception() -> None:
    key = unusual_key()
    Secret(key)  # a key read for a backend, as create_backend does
    record = ErrorInfo.from_exception(RuntimeError(f"upstream said: bad key {key}"), actor="generator")
    assert record.message == "upstream said: bad key ***"


# ------------------------------------------------------------------ a redirect elsewhere


@pytest.mark.parametrize("stream", [True, False])
async def test_a_redirect_is_never_followed_and_names_its_target(stream: bool) -> None:
    key = unusual_key()
    async with open_misbehaving_server("echo-key") as elsewhere, \
            open_misbehaving_server("redirect", target=elsewhere.url) as server:
        for backend in [OpenAIChatBackend(base_url=server.openai_base_url, model="m", api_key=Secret(key)),
                        AnthropicMessagesBackend(base_url=server.url, model="m", api_key=Secret(key))]:
            async with backend:
                with anyio.fail_after(10), pytest.raises(FatalBackendError) as info:
                    await backend.complete(REQUEST, stream=stream)
            message = str(info.value)
            assert "307" in message and f"{elsewhere.url}/" in message and "not followed" in message
            assert key not in message
    assert server.requests == 2
    assert elsewhere.requests == 0  # the key went nowhere else


async def test_a_redirect_is_not_retried_by_the_limiter_nor_followed_by_a_judge() -> None:
    from open_strawberry.grading import open_grader
    from open_strawberry.messages import Problem

    async with open_misbehaving_server("echo-key") as elsewhere, \
            open_misbehaving_server("redirect", target=elsewhere.url) as server:
        async with open_grader(f"judge:vllm:m@{server.openai_base_url}") as judge:
            with anyio.fail_after(10), \
                    pytest.raises(FatalBackendError, match="307 Temporary Redirect to .*not followed") as info:
                await judge.grade("42", "42", Problem(id="p", prompt="What is 6 * 7?", answer="42"))
    assert info.value.attempts == 1
    assert server.requests == 1 and elsewhere.requests == 0


async def test_the_batch_routes_follow_no_redirect() -> None:
    from open_strawberry.backends.batch_apis import AnthropicBatches, OpenAIBatches

    key = unusual_key()
    async with open_misbehaving_server("echo-key") as elsewhere, \
            open_misbehaving_server("redirect", target=elsewhere.url) as server:
        async with OpenAIBatches(base_url=server.openai_base_url, model="m", api_key=Secret(key)) as openai_batches:
            with anyio.fail_after(10), pytest.raises(FatalBackendError, match="not followed"):
                await openai_batches.retrieve("batch_1")
        async with AnthropicBatches(base_url=server.url, model="m", api_key=Secret(key)) as anthropic_batches:
            with anyio.fail_after(10), pytest.raises(FatalBackendError, match="not followed"):
                await anthropic_batches.retrieve("batch_1")
    assert server.requests == 2 and elsewhere.requests == 0


# ------------------------------------------------------------------ a key echoed in a reply


@pytest.mark.parametrize("stream", [True, False])
async def test_a_key_echoed_in_a_reply_is_kept_in_memory_and_masked_when_written(stream: bool) -> None:
    from open_strawberry.messages import json_encoder

    key = unusual_key()
    async with open_misbehaving_server("echo-reply") as server:
        for backend in [OpenAIChatBackend(base_url=server.openai_base_url, model="m", api_key=Secret(key)),
                        AnthropicMessagesBackend(base_url=server.url, model="m", api_key=Secret(key))]:
            async with backend:
                with anyio.fail_after(10):
                    completion = await backend.complete(REQUEST, stream=stream)
            # what is sent back (a thinking block's signature covers its text) stays as it came
            assert key in completion.text and key in completion.reasoning
            written = json_encoder.encode(completion.message())
            assert key.encode() not in written and b"***" in written
            buffer = bytearray(b"stale bytes")
            json_encoder.encode_into(completion, buffer)
            assert key.encode() not in buffer and msgspec.json.decode(buffer)["text"].endswith("***")


async def test_a_run_against_a_server_that_echoes_its_key_writes_it_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from open_strawberry.pipeline import GenerateConfig, generate

    key = unusual_key()
    monkeypatch.setenv("ECHOED_TEST_KEY", key)
    async with open_misbehaving_server("echo-reply") as server:
        config = GenerateConfig(problems="builtin:mixed:2", model=f"vllm:m@{server.openai_base_url}",
                                api_key_env="ECHOED_TEST_KEY", out=str(tmp_path / "traces.jsonl"), max_turns=2)
        with anyio.fail_after(60):
            summary = await generate(config)
    assert summary.written == 2
    written = written_files(tmp_path)
    assert "Bearer ***" in written["traces.jsonl"]  # the reply was written, the key masked
    assert len(written) > 1 and not [name for name, text in written.items() if key in text]


def written_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ retry hints that are no waits


@pytest.mark.parametrize("hint", [{"retry-after": "nan"}, {"retry-after": "-5"}, {"retry-after-ms": "nan"}])
async def test_a_429_whose_retry_after_is_no_number_is_retried_after_a_backoff(hint: dict[str, str]) -> None:
    limited = Canned(status=429, headers={"content-type": "application/json", **hint},
                     chunks=[b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'])
    chunk = '{"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}'
    async with open_canned_server(limited, Canned(chunks=sse(chunk, "[DONE]"))) as server:
        async with create_limited_backend(f"vllm:m@{server.url}", retry=RetryPolicy(initial_backoff_s=0.01)) as backend:
            with anyio.fail_after(10):
                completion = await backend.complete(REQUEST)
    assert completion.text == "42" and completion.timings.attempts == 2


def test_a_client_refuses_a_url_password_beside_a_bearer_token() -> None:
    with pytest.raises(ConfigurationError, match=r"http://\*\*\*@127.0.0.1:1/v1 carries a user and password"):
        OpenAIChatBackend(base_url="http://user:pass@127.0.0.1:1/v1", model="m", api_key=Secret(unusual_key()))
    with pytest.raises(ConfigurationError, match="Authorization header"):
        OpenAIChatBackend(base_url="http://user:pass@127.0.0.1:1/v1", model="m", headers={"Authorization": "x"})
    OpenAIChatBackend(base_url="http://user:pass@127.0.0.1:1/v1", model="m")  # basic auth alone is fine
    AnthropicMessagesBackend(base_url="http://user:pass@127.0.0.1:1", model="m", api_key=Secret(unusual_key()))


# ------------------------------------------------------------------ usage no server can mean


def openai_reply(usage: dict[str, int], *, stream: bool) -> Canned:
    if not stream:
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}],
                "usage": usage}
        return Canned(headers={"content-type": "application/json"}, chunks=[msgspec.json.encode(body)])
    chunk = {"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}], "usage": usage}
    return Canned(chunks=sse(msgspec.json.encode(chunk).decode(), "[DONE]"))


def anthropic_reply(usage: dict[str, int]) -> Canned:
    body = {"type": "message", "model": "m", "content": [{"type": "text", "text": "42"}], "stop_reason": "end_turn",
            "usage": usage}
    return Canned(headers={"content-type": "application/json"}, chunks=[msgspec.json.encode(body)])


@pytest.mark.parametrize(("usage", "named"), [
    ({"prompt_tokens": -3_000_000, "completion_tokens": 5}, "input_tokens=-3,000,000"),
    ({"prompt_tokens": 5, "completion_tokens": -1}, "output_tokens=-1"),
    ({"prompt_tokens": 5, "completion_tokens": 10**15}, "output_tokens=1,000,000,000,000,000"),
    ({"prompt_tokens": 10**12, "completion_tokens": 5}, "input_tokens=1,000,000,000,000"),
])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_usage_no_server_can_mean_is_a_garbled_reply(usage: dict[str, int], named: str, stream: bool) -> None:
    async with open_canned_server(openai_reply(usage, stream=stream)) as server, \
            OpenAIChatBackend(base_url=server.url, model="m") as backend:
        with anyio.fail_after(10), pytest.raises(StreamError, match=f"usage is not believable: {named}") as info:
            await backend.complete(REQUEST, stream=stream)
    assert info.value.retryable


async def test_an_anthropic_usage_no_server_can_mean_is_a_garbled_reply_too() -> None:
    async with open_canned_server(anthropic_reply({"input_tokens": 5, "output_tokens": -9})) as server, \
            AnthropicMessagesBackend(base_url=server.url, model="m") as backend:
        with anyio.fail_after(10), pytest.raises(StreamError, match="output_tokens=-9"):
            await backend.complete(REQUEST, stream=False)
    async with open_canned_server(openai_reply({"prompt_tokens": 5, "completion_tokens": 16 * 32},
                                               stream=True)) as server, \
            OpenAIChatBackend(base_url=server.url, model="m") as backend:
        assert (await backend.complete(REQUEST)).usage.output_tokens == 512  # generous: a server's own count


async def test_a_run_whose_judge_redirects_elsewhere_sends_and_writes_the_key_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from open_strawberry.mock import MockConfig, open_mock_server
    from open_strawberry.pipeline import GenerateConfig, generate

    key = unusual_key()
    monkeypatch.setenv("VLLM_API_KEY", key)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging()
    try:
        async with open_mock_server(MockConfig(accuracy=1.0, confident_after=1)) as model, \
                open_misbehaving_server("echo-key") as elsewhere, \
                open_misbehaving_server("redirect", target=elsewhere.url) as judge:
            problems = tmp_path / "problems.jsonl"
            problems.write_text('{"id": "a", "prompt": "What is 6 * 7?", "answer": "42"}\n')
            config = GenerateConfig(problems=str(problems), model=f"vllm:m@{model.openai_base_url}",
                                    grader=f"judge:vllm:j@{judge.openai_base_url}", out=str(tmp_path / "t.jsonl"),
                                    max_turns=4, final_every=2, max_failed_share=1.0)
            with anyio.fail_after(60):
                await generate(config)
    finally:
        structlog.reset_defaults()
    assert judge.requests >= 1 and elsewhere.requests == 0
    written = written_files(tmp_path)
    assert "not followed" in written["t.jsonl"]  # the judge's refusal is in the records
    assert not [name for name, text in written.items() if key in text]
    assert key not in stderr.getvalue()
