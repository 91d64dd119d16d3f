"""Retries, backoff, cooldowns and attempt records of LimitedBackend, on a manual clock."""

from __future__ import annotations

import random

import anyio
import pytest

from open_strawberry import ChatMessage, Completion, Usage
from open_strawberry.backends import ChatRequest
from open_strawberry.backends.base import DeltaCallback
from open_strawberry.backends.tokens import estimate_prompt_tokens
from open_strawberry.errors import (
    AuthenticationError,
    BackendError,
    BadRequestError,
    RateLimitedError,
    ServerError,
    StreamError,
)
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, ManualClock, RetryPolicy

REQUEST = ChatRequest(messages=(ChatMessage(role="user", content="2 + 2?"),), max_tokens=50)


class Scripted:
    """A backend that plays a script of errors and texts, one entry per call."""

    provider = "scripted"
    model = "m"

    def __init__(self, *script: BackendError | str) -> None:
        self.script = list(script)
        self.calls = 0

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        self.calls += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if on_delta:
            on_delta(step)
        return Completion(text=step, usage=Usage(input_tokens=10, output_tokens=5))

    async def aclose(self) -> None:
        pass


async def run_with_clock(clock: ManualClock, call) -> object:  # type: ignore[no-untyped-def]
    """Run ``call`` and advance the clock whenever everything else is blocked on it."""
    result: list[object] = []
    failure: list[BaseException] = []

    async def runner() -> None:
        try:
            result.append(await call())
        except Exception as exc:
            failure.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        while not (result or failure):
            await anyio.wait_all_tasks_blocked()
            if not (result or failure):
                clock.advance(0.05)
    if failure:
        raise failure[0]
    return result[0]


async def test_transient_errors_are_retried_and_recorded() -> None:
    clock = ManualClock()
    backend = Scripted(ServerError("boom", status=500), StreamError("cut"), "four")
    limited = LimitedBackend(backend, Limiter(clock=clock), RetryPolicy(initial_backoff_s=1.0), rng=random.Random(0))
    completion = await run_with_clock(clock, lambda: limited.complete(REQUEST))
    assert isinstance(completion, Completion)
    assert completion.text == "four"
    assert completion.timings.attempts == 3
    assert [(a.error, a.status) for a in completion.timings.failed_attempts] == [("ServerError", 500),
                                                                                 ("StreamError", None)]
    assert 0 <= completion.timings.failed_attempts[0].backoff_s <= 1.0
    assert 0 <= completion.timings.failed_attempts[1].backoff_s <= 2.0
    assert limited.limiter.statistics().retries == 2


async def test_retry_after_is_honoured_and_a_429_cools_the_whole_backend_down() -> None:
    clock = ManualClock()
    limiter = Limiter(clock=clock)
    limited = LimitedBackend(Scripted(RateLimitedError("slow down", status=429, retry_after=7.0), "a", "b"), limiter)
    finished: dict[str, float] = {}

    async def call(name: str) -> None:
        await limited.complete(REQUEST)
        finished[name] = clock.now()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await anyio.wait_all_tasks_blocked()
        assert limiter.statistics().cooldown_remaining_s == 7.0
        tg.start_soon(call, "second")  # a new call waits for the cooldown too
        await anyio.wait_all_tasks_blocked()
        clock.advance(6.9)
        await anyio.wait_all_tasks_blocked()
        assert finished == {}
        clock.advance(0.1)
    assert finished == {"first": 7.0, "second": 7.0}
    stats = limiter.statistics()
    assert (stats.rate_limited, stats.cooldowns, stats.retries) == (1, 1, 1)


@pytest.mark.parametrize(
    ("error", "calls"),
    [
        (BadRequestError("bad", status=400), 1),
        (AuthenticationError("who?", status=401), 1),
        (ServerError("no", status=500, should_retry=False), 1),
    ],
)
async def test_fatal_errors_and_should_retry_false_are_not_retried(error: BackendError, calls: int) -> None:
    backend = Scripted(error, "never")
    limited = LimitedBackend(backend, Limiter(clock=ManualClock()))
    with pytest.raises(type(error)) as info:
        await limited.complete(REQUEST)
    assert backend.calls == calls
    assert info.value.attempts == 1


async def test_should_retry_true_retries_even_a_fatal_status() -> None:
    clock = ManualClock()
    backend = Scripted(BadRequestError("odd", status=400, should_retry=True, retry_after=0.0), "ok")
    completion = await run_with_clock(clock, lambda: LimitedBackend(backend, Limiter(clock=clock)).complete(REQUEST))
    assert isinstance(completion, Completion) and completion.timings.attempts == 2


async def test_the_attempt_cap_and_the_deadline_end_a_call_with_its_attempts() -> None:
    clock = ManualClock()
    backend = Scripted(*[ServerError("down", status=503) for _ in range(10)])
    limited = LimitedBackend(backend, Limiter(clock=clock), RetryPolicy(max_attempts=4, initial_backoff_s=0.1))
    with pytest.raises(ServerError) as info:
        await run_with_clock(clock, lambda: limited.complete(REQUEST))
    assert (info.value.attempts, backend.calls) == (4, 4)

    backend = Scripted(*[RateLimitedError("later", status=429, retry_after=30.0) for _ in range(10)])
    limited = LimitedBackend(backend, Limiter(clock=clock), RetryPolicy(max_attempts=10, deadline_s=100.0))
    with pytest.raises(RateLimitedError) as info:
        await run_with_clock(clock, lambda: limited.complete(REQUEST))
    assert (info.value.attempts, backend.calls) == (4, 4)  # a fourth wait of 30 s would pass the deadline


async def test_limiter_waits_are_reported_in_the_timings() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(rpm=60), clock=clock)
    limited = LimitedBackend(Scripted(*["x"] * 61), limiter)
    for _ in range(60):
        await limited.complete(REQUEST)
    completion = await run_with_clock(clock, lambda: limited.complete(REQUEST))
    assert isinstance(completion, Completion)
    assert completion.timings.limiter_wait_s == pytest.approx(1.0, abs=0.06)


def test_local_servers_get_adaptive_concurrency_and_hosted_apis_their_budgets() -> None:
    from open_strawberry.limiter import create_limited_backend

    local = create_limited_backend("vllm:qwen")
    assert local.limiter.config.adaptive is not None
    assert local.limiter.statistics().concurrency_limit == local.limiter.config.adaptive.initial
    fixed = create_limited_backend("ollama:llama3", max_concurrency=4)
    assert fixed.limiter.config.adaptive is None and fixed.limiter.statistics().concurrency_limit == 4
    hosted = create_limited_backend("openai:gpt-4o-mini", rpm=500, tpm=200_000, api_key_env="PATH")
    assert hosted.limiter.config.adaptive is None
    assert hosted.limiter.statistics().budgets["tokens"].capacity == 200_000


async def test_adaptive_concurrency_backs_off_when_a_local_server_is_overloaded() -> None:
    from open_strawberry.backends import OpenAIChatBackend
    from open_strawberry.limiter import AIMDConfig
    from open_strawberry.mock import FaultRates, MockConfig, open_mock_server

    config = MockConfig(faults=FaultRates(http_503=0.3), seed=3)
    async with open_mock_server(config) as server:
        limiter = Limiter(LimiterConfig(adaptive=AIMDConfig(initial=32, decrease_interval_s=0.0)))
        backend = LimitedBackend(OpenAIChatBackend(base_url=server.openai_base_url, model="m"), limiter,
                                 RetryPolicy(initial_backoff_s=0.001, max_backoff_s=0.01, max_attempts=20))
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(backend.complete, REQUEST)
        await backend.aclose()
    stats = limiter.statistics()
    assert stats.overloaded > 0
    assert stats.concurrency_limit is not None and stats.concurrency_limit < 32


class Stalled:
    """A backend whose calls hang until cancelled."""

    provider = "stalled"
    model = "m"

    def __init__(self) -> None:
        self.called = anyio.Event()

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        self.called.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_a_cancelled_call_gives_its_limiter_place_back() -> None:
    backend = Stalled()
    limiter = Limiter(LimiterConfig(max_concurrency=1, tpm=10_000), clock=ManualClock())
    limited = LimitedBackend(backend, limiter)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(limited.complete, REQUEST)
            await backend.called.wait()
            assert limiter.statistics().in_flight == 1
            tg.cancel_scope.cancel()
    stats = limiter.statistics()
    assert (stats.in_flight, stats.failed_attempts, stats.budgets["tokens"].level) == (0, 0, 10_000)


async def test_a_limited_backend_closes_the_backend_it_owns_once_per_close() -> None:
    class Counting(Scripted):
        closes = 0

        async def aclose(self) -> None:
            self.closes += 1

    backend = Counting("x")
    async with LimitedBackend(backend, Limiter(clock=ManualClock())) as limited:
        await limited.complete(REQUEST)
    assert backend.closes == 1


async def test_a_call_reserves_its_prompt_and_the_outputs_seen_so_far() -> None:
    class Watched(Scripted):
        """Notes the token budget's level while each call is in flight."""

        def __init__(self, limiter: Limiter) -> None:
            super().__init__("first reply", "second reply")
            self.limiter = limiter
            self.levels: list[float] = []

        async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                           stream: bool = True) -> Completion:
            self.levels.append(self.limiter.statistics().budgets["tokens"].level)
            return await super().complete(request, on_delta=on_delta, stream=stream)

    limiter = Limiter(LimiterConfig(tpm=100_000), clock=ManualClock())
    backend = Watched(limiter)
    limited = LimitedBackend(backend, limiter)
    prompt = estimate_prompt_tokens(REQUEST.messages)
    await limited.complete(REQUEST)  # nothing learned yet: all of max_tokens is reserved
    await limited.complete(REQUEST)  # the first call used 5 output tokens: 5 are reserved
    assert backend.levels[0] == 100_000 - (prompt + 50)
    assert backend.levels[1] == 100_000 - 15 - (prompt + 5)  # the first call settled at 10 + 5 tokens
    assert limited.estimate(REQUEST).output_tokens == 5


async def test_an_absurd_retry_after_ends_the_call_saying_why_and_stalls_no_other_call() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(max_cooldown_s=60.0), clock=clock)
    limited = LimitedBackend(Scripted(RateLimitedError("slow down", status=429, retry_after=99_999_999.0), "b"),
                             limiter)
    with pytest.raises(RateLimitedError) as info:
        await limited.complete(REQUEST)
    assert "the server asked to wait 1e+08 s, past the call's deadline_s=600 s: given up" in str(info.value)
    assert info.value.attempts == 1
    assert limiter.statistics().cooldown_remaining_s == 60.0  # not three years for everyone else
    completion = await run_with_clock(clock, lambda: limited.complete(REQUEST))
    assert isinstance(completion, Completion) and completion.text == "b" and clock.now() <= 60.1
