"""The pipeline against llama-cpp-python's server, which serves one request at a time and, by
default, cuts off the stream in progress when another request arrives."""

from __future__ import annotations

import json

import anyio
import pytest

from open_strawberry.backends import ChatRequest, create_backend
from open_strawberry.backends.capacity import probe_capacity
from open_strawberry.backends.models import parse_model
from open_strawberry.errors import StreamError
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, RetryPolicy
from open_strawberry.messages import ChatMessage, Completion
from open_strawberry.pipeline import generate
from open_strawberry.traces import read_traces
from tests.real.servers import RealServer
from tests.real.test_llama_server import SMALL, check_records

pytestmark = pytest.mark.timeout(900)

LONG = ChatRequest(messages=(ChatMessage(role="user", content="Write a long story about a lighthouse keeper."),),
                   max_tokens=200, temperature=0.7)
SHORT = ChatRequest(messages=(ChatMessage(role="user", content="Say hello."),), max_tokens=16, temperature=0.0)


async def overlap(first: object, second: object) -> tuple[Completion | BaseException, Completion]:
    """Start a long streamed call on ``first``; once its first text arrives, send a short
    (non-streamed) call on ``second``. Returns what the long call came to (its completion or its
    error) and the short one."""
    streaming = anyio.Event()
    outcome: list[Completion | BaseException] = []

    async def long_call() -> None:
        try:
            outcome.append(await first.complete(LONG, on_delta=lambda _text: streaming.set()))  # type: ignore[attr-defined]
        except StreamError as exc:
            outcome.append(exc)
        streaming.set()

    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await streaming.wait()
            # not streamed: the server cuts off streams only, so the intruder itself gets through
            short = await second.complete(SHORT, stream=False)  # type: ignore[attr-defined]
    return outcome[0], short


async def test_a_second_request_cuts_the_first_stream_off_and_the_client_says_so(
        llamacpp_python: RealServer) -> None:
    async with create_backend(llamacpp_python.model()) as backend:  # type: ignore[attr-defined]
        long, short = await overlap(backend, backend)
    assert isinstance(long, StreamError), f"the long stream was not cut off: {long!r}"
    assert "no finish reason" in str(long)
    assert short.text.strip() and short.finish_reason is not None


async def test_the_interrupted_turn_is_retried_not_recorded_empty(llamacpp_python: RealServer) -> None:
    limited = LimitedBackend(create_backend(llamacpp_python.model()), Limiter(LimiterConfig(max_concurrency=8)),
                             RetryPolicy(max_attempts=5, initial_backoff_s=0.05))
    async with limited, create_backend(llamacpp_python.model()) as other:  # type: ignore[attr-defined]
        long, _ = await overlap(limited, other)
    assert isinstance(long, Completion), long
    assert long.text.strip() and long.finish_reason in {"stop", "length"}
    assert long.timings.attempts >= 2 and any(a.error == "StreamError" for a in long.timings.failed_attempts)


async def test_generate_with_defaults_sends_one_call_at_a_time(llamacpp_python: RealServer,
                                                               tmp_path: pytest.TempPathFactory) -> None:
    capacity = await probe_capacity(parse_model(llamacpp_python.model()))
    assert capacity is not None and (capacity.slots, capacity.server) == (1, "llama-cpp-python")
    with anyio.fail_after(600):
        summary = await generate(problems="builtin:arithmetic:4", model=llamacpp_python.model(),
                                 out=str(tmp_path / "t.jsonl"), **SMALL)  # type: ignore[operator]
    records = list(read_traces(summary.out))
    assert len(records) == 4
    check_records(records, real_usage=False)  # it sends no usage in streams, even when asked
    assert all(t.timings.attempts == 1 for r in records for t in r.turns)  # nothing was cut off
    manifest = json.loads(await anyio.Path(summary.manifest).read_text())
    assert manifest["server_capacity"].startswith("llama-cpp-python: 1 slot")
