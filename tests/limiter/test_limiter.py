"""The limiter with a manual clock: budgets, settling, headers, cooldown, fairness, AIMD."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import anyio
import pytest

from open_strawberry import Usage
from open_strawberry.backends.headers import parse_duration, parse_rate_limits, retry_hints
from open_strawberry.errors import (
    BackendConnectionError,
    BackendTimeoutError,
    CallWithdrawnError,
    OverloadedError,
    RateLimitedError,
)
from open_strawberry.limiter import (
    AIMD,
    AIMDConfig,
    Cost,
    Limiter,
    LimiterConfig,
    ManualClock,
    Reservation,
    RetryPolicy,
    TokenBucket,
)
from open_strawberry.messages import RateLimits, RateLimitWindow


async def settle() -> None:
    await anyio.wait_all_tasks_blocked()


class Calls:
    """Start reservations in the background and record the order they were admitted in.

    A call ends as soon as it is admitted, or with ``hold=True`` keeps its place until
    :meth:`finish` lets it go.
    """

    def __init__(self, limiter: Limiter, tg: anyio.abc.TaskGroup) -> None:
        self.limiter, self.tg = limiter, tg
        self.admitted: list[str] = []
        self.reservations: dict[str, Reservation] = {}
        self._finish: dict[str, anyio.Event] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}

    def start(self, name: str, cost: Cost | None = None, *, hold: bool = False) -> None:
        finish = self._finish[name] = anyio.Event()
        scope = self._scopes[name] = anyio.CancelScope()

        async def run() -> None:
            with scope:
                async with self.limiter.reserve(cost or Cost()) as reservation:
                    self.reservations[name] = reservation
                    self.admitted.append(name)
                    if hold:
                        await finish.wait()

        self.tg.start_soon(run)

    def finish(self, *names: str) -> None:
        for name in names or tuple(self._finish):
            self._finish[name].set()

    def cancel(self, name: str) -> None:
        self._scopes[name].cancel()


def test_a_bucket_starts_full_refills_per_minute_and_can_go_into_debt() -> None:
    bucket = TokenBucket(60, now=0.0)
    assert bucket.fits(60)
    bucket.take(90)
    assert bucket.level == -30
    bucket.refill(10.0)  # one unit a second
    assert bucket.level == -20
    assert bucket.time_to_fit(5) == 25
    assert bucket.fits(1000) is False
    bucket.refill(1000.0)
    assert bucket.level == 60 and bucket.fits(1000)  # more than the capacity fits a full bucket


async def test_the_request_budget_paces_calls() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(rpm=60), clock=clock)
    async with anyio.create_task_group() as tg:
        calls = Calls(limiter, tg)
        for i in range(62):
            calls.start(f"c{i}")
        await settle()
        assert len(calls.admitted) == 60  # the bucket starts full
        clock.advance(0.5)
        await settle()
        assert len(calls.admitted) == 60
        clock.advance(0.5)
        await settle()
        assert len(calls.admitted) == 61
        clock.advance(1.0)
        await settle()
    assert len(calls.admitted) == 62
    assert limiter.statistics().admitted == 62


async def test_reservations_are_settled_to_the_real_usage() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(tpm=1000, output_tpm=600), clock=clock)
    async with limiter.reserve(Cost(input_tokens=100, output_tokens=400)) as reservation:
        assert limiter.statistics().budgets["tokens"].level == 500
        reservation.settle(usage=Usage(input_tokens=100, output_tokens=100))
        budgets = limiter.statistics().budgets
        assert budgets["tokens"].level == 800  # settled at once, not when the block ends
        assert budgets["output_tokens"].level == 500
        assert limiter.statistics().in_flight == 0
    async with limiter.reserve(Cost(input_tokens=10, output_tokens=10)) as reservation:
        reservation.settle(usage=Usage(input_tokens=10, output_tokens=900))  # used more than reserved
    assert limiter.statistics().budgets["tokens"].level == 800 - 910  # a debt the refill pays first
    assert limiter.statistics().succeeded == 2


async def test_errors_refund_the_token_reservation_but_not_the_request() -> None:
    limiter = Limiter(LimiterConfig(rpm=10, tpm=1000), clock=ManualClock())
    with pytest.raises(BackendConnectionError):
        async with limiter.reserve(Cost(input_tokens=300, output_tokens=200)):
            raise BackendConnectionError("connection reset")
    stats = limiter.statistics()
    assert (stats.budgets["requests"].level, stats.budgets["tokens"].level) == (9, 1000)
    assert (stats.in_flight, stats.failed_attempts, stats.succeeded, stats.cooldowns) == (0, 1, 0, 0)


async def test_the_output_estimate_follows_real_outputs_capped_by_max_tokens() -> None:
    limiter = Limiter(clock=ManualClock())
    assert limiter.output_estimate(512) == 512  # nothing learned yet: the cap
    for _ in range(50):
        async with limiter.reserve(Cost()) as reservation:
            reservation.settle(usage=Usage(output_tokens=40))
    assert limiter.output_estimate(512) == 40  # exactly what the calls used, no margin on top
    assert limiter.output_estimate(10) == 10
    async with limiter.reserve(Cost()) as reservation:
        reservation.settle(usage=Usage(output_tokens=140))
    assert limiter.output_estimate(512) == 50  # a running average: 0.9 x 40 + 0.1 x 140


async def test_the_concurrency_cap_admits_a_waiter_when_a_call_ends() -> None:
    limiter = Limiter(LimiterConfig(max_concurrency=2), clock=ManualClock())
    async with anyio.create_task_group() as tg:
        calls = Calls(limiter, tg)
        for name in "abc":
            calls.start(name, hold=True)
        await settle()
        assert calls.admitted == ["a", "b"]
        assert limiter.statistics().waiting == 1
        calls.reservations["a"].settle(usage=Usage())
        await settle()
        assert calls.admitted == ["a", "b", "c"]
        calls.finish()
    assert limiter.statistics().in_flight == 0


async def test_a_cooldown_pauses_new_calls() -> None:
    clock = ManualClock()
    limiter = Limiter(clock=clock)
    limiter.cooldown(5.0)
    async with anyio.create_task_group() as tg:
        calls = Calls(limiter, tg)
        calls.start("a")
        await settle()
        clock.advance(4.9)
        await settle()
        assert calls.admitted == []
        clock.advance(0.1)
        await settle()
        assert calls.admitted == ["a"]
    assert limiter.statistics().cooldowns == 1


async def test_a_cancelled_waiter_is_removed() -> None:
    limiter = Limiter(LimiterConfig(max_concurrency=1), clock=ManualClock())
    async with limiter.reserve(Cost()):
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with limiter.reserve(Cost()):
                pytest.fail("admitted past the cap")
        assert limiter.statistics().waiting == 0
        assert limiter.statistics().in_flight == 1
    assert limiter.statistics().in_flight == 0


async def test_small_calls_pass_a_big_one_only_until_it_has_waited_the_fairness_window() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(tpm=600, fairness_s=2.0), clock=clock)  # 10 tokens a second
    async with anyio.create_task_group() as tg:
        calls = Calls(limiter, tg)  # every call keeps its tokens until the end
        calls.start("first", Cost(input_tokens=500), hold=True)  # leaves 100
        await settle()
        calls.start("big", Cost(input_tokens=300), hold=True)
        await settle()
        calls.start("small1", Cost(input_tokens=50), hold=True)
        await settle()
        assert calls.admitted == ["first", "small1"]  # passes the big call, which cannot fit yet
        clock.advance(2.0)  # the big call has now waited its window; 70 tokens in the bucket
        calls.start("small2", Cost(input_tokens=50), hold=True)
        await settle()
        assert calls.admitted == ["first", "small1"]  # small2 would fit, but may not pass any more
        clock.advance(23.0)  # 300 tokens for the big call
        await settle()
        assert calls.admitted == ["first", "small1", "big"]
        clock.advance(5.0)
        await settle()
        calls.finish()
    assert calls.admitted == ["first", "small1", "big", "small2"]


async def test_budgets_are_learned_from_headers_and_corrected_by_remaining() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(rpm=1000), clock=clock)
    limiter.observe(RateLimits(requests=RateLimitWindow(limit=50, remaining=3),
                               tokens=RateLimitWindow(limit=6000, remaining=5000, reset_s=10.0)))
    budgets = limiter.statistics().budgets
    assert (budgets["requests"].capacity, budgets["requests"].level) == (1000, 3)  # set by hand: kept, corrected
    assert (budgets["tokens"].capacity, budgets["tokens"].level) == (6000, 5000)  # learned
    async with anyio.create_task_group() as tg:
        calls = Calls(limiter, tg)
        for name in "abcd":
            calls.start(name)
        await settle()
        assert calls.admitted == ["a", "b", "c"]
        clock.advance(0.06)  # 1000 rpm refills one request in 60 ms
        await settle()
    assert calls.admitted == ["a", "b", "c", "d"]


def test_openai_durations_and_both_providers_headers_parse() -> None:
    assert parse_duration("6m0s") == 360
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("7") == 7
    assert parse_duration("soon") is None
    openai_headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                      "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
                      "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s"}
    limits = parse_rate_limits(openai_headers)
    assert limits is not None and limits.requests is not None and limits.tokens is not None
    assert (limits.requests.limit, limits.requests.remaining) == (500, 499)
    assert limits.requests.reset_s == pytest.approx(0.12)
    assert limits.tokens.reset_s == 2.0
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    anthropic_headers = {"anthropic-ratelimit-input-tokens-limit": "40000",
                         "anthropic-ratelimit-input-tokens-remaining": "39000",
                         "anthropic-ratelimit-input-tokens-reset": "2026-01-01T12:00:30Z",
                         "anthropic-ratelimit-requests-limit": "50",
                         "anthropic-ratelimit-requests-remaining": "0",
                         "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:01.5Z"}
    limits = parse_rate_limits(anthropic_headers, now=now)
    assert limits is not None and limits.input_tokens is not None and limits.requests is not None
    assert (limits.input_tokens.limit, limits.input_tokens.remaining, limits.input_tokens.reset_s) == (40000, 39000, 30)
    assert limits.requests.reset_s == 1.5
    assert limits.output_tokens is None
    assert parse_rate_limits({"content-type": "text/plain"}) is None


def test_retry_hints() -> None:
    assert retry_hints({"retry-after-ms": "250", "retry-after": "3"}) == (0.25, None)
    assert retry_hints({"retry-after": "3", "x-should-retry": "false"}) == (3.0, False)
    assert retry_hints({"retry-after": "Wed, 01 Jan 2026 12:00:05 GMT"},
                       now=datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()) == (5.0, None)
    assert retry_hints({"retry-after": "later", "x-should-retry": "true"}) == (None, True)


def test_backoff_has_full_jitter_within_exponential_bounds() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=4.0)
    rng = random.Random(1)
    for attempt, bound in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        samples = [policy.backoff(attempt, rng) for _ in range(2000)]
        assert min(samples) >= 0 and max(samples) <= bound
        assert min(samples) < bound * 0.05 and max(samples) > bound * 0.95  # spread over the whole range
        assert sum(samples) / len(samples) == pytest.approx(bound / 2, rel=0.1)


def test_aimd_adds_per_round_cuts_on_overload_and_latency_and_stays_in_bounds() -> None:
    aimd = AIMD(AIMDConfig(initial=4, floor=2, ceiling=6, decrease_interval_s=1.0, slow_start=False))
    for _ in range(5):
        aimd.on_success(0.1, now=0.0)
    assert aimd.current == 5  # about one more per round of `limit` successes
    for _ in range(100):
        aimd.on_success(0.1, now=0.0)
    assert aimd.current == 6  # the ceiling
    aimd.on_overload(now=10.0)
    assert aimd.current == 3
    aimd.on_overload(now=10.5)  # a burst of errors within the interval cuts once
    assert aimd.current == 3
    aimd.on_overload(now=12.0)
    assert aimd.current == 2  # the floor
    rising = AIMD(AIMDConfig(initial=20, latency_tolerance=2.0, slow_start=False))
    for _ in range(20):
        rising.on_success(0.1, now=0.0)
    before = rising.limit
    rising.on_success(0.5, now=5.0)  # five times the best latency
    assert rising.limit == pytest.approx(before * 0.9)


async def test_an_adaptive_limiter_shows_its_limit_in_statistics() -> None:
    limiter = Limiter(LimiterConfig(adaptive=AIMDConfig(initial=3)), clock=ManualClock())
    assert limiter.statistics().concurrency_limit == 3
    with pytest.raises(OverloadedError):
        async with limiter.reserve(Cost()):
            raise OverloadedError("busy", status=503)
    stats = limiter.statistics()
    assert (stats.concurrency_limit, stats.overloaded, stats.failed_attempts) == (1, 1, 1)


async def test_a_budget_learned_mid_call_charges_that_call_its_real_usage() -> None:
    limiter = Limiter(clock=ManualClock())
    async with limiter.reserve(Cost(input_tokens=100, output_tokens=300)) as early:  # no budget known yet
        limiter.observe(RateLimits(tokens=RateLimitWindow(limit=6000, remaining=6000)))
        early.settle(usage=Usage(input_tokens=100, output_tokens=50))
    assert limiter.statistics().budgets["tokens"].level == 6000 - 150  # charged, not refunded what it never took


def test_aimd_slow_start_doubles_each_round_until_the_first_cut() -> None:
    aimd = AIMD(AIMDConfig(initial=4, ceiling=1000))
    for _ in range(4 + 8 + 16):  # three rounds of successes
        aimd.on_success(0.1, now=0.0)
    assert aimd.current == 32
    aimd.on_overload(now=1.0)
    assert aimd.current == 16
    for _ in range(17):
        aimd.on_success(0.1, now=1.0)
    assert aimd.current == 16 + 1  # additive from now on: about one per round


async def test_a_reservation_left_without_settling_gives_its_place_and_tokens_back() -> None:
    limiter = Limiter(LimiterConfig(max_concurrency=1, tpm=1000), clock=ManualClock())
    async with limiter.reserve(Cost(input_tokens=300, output_tokens=200)) as reservation:
        assert limiter.statistics().budgets["tokens"].level == 500
    assert reservation.done
    stats = limiter.statistics()
    assert (stats.in_flight, stats.budgets["tokens"].level, stats.succeeded, stats.failed_attempts) == (0, 1000, 0, 0)
    with pytest.raises(RuntimeError, match="already"):
        reservation.settle(usage=Usage())  # too late: the block gave it back


async def test_a_reservation_is_settled_only_once() -> None:
    limiter = Limiter(clock=ManualClock())
    async with limiter.reserve(Cost()) as reservation:
        reservation.settle(usage=Usage(output_tokens=5))
        with pytest.raises(RuntimeError, match="already"):
            reservation.settle(usage=Usage(output_tokens=5))
    assert (limiter.statistics().succeeded, limiter.statistics().in_flight) == (1, 0)


async def test_a_failed_call_releases_its_reservation_and_admits_the_next() -> None:
    limiter = Limiter(LimiterConfig(max_concurrency=1, tpm=1000), clock=ManualClock())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            calls = Calls(limiter, tg)
            calls.start("next", Cost(input_tokens=100), hold=True)
            with pytest.raises(BackendConnectionError):
                async with limiter.reserve(Cost(input_tokens=300)):
                    await settle()
                    assert limiter.statistics().waiting == 1
                    raise BackendConnectionError("reset")
            await settle()
            assert calls.admitted == ["next"]
            assert limiter.statistics().budgets["tokens"].level == 900  # the failed call's 300 came back
            calls.finish()
    stats = limiter.statistics()
    assert (stats.in_flight, stats.failed_attempts) == (0, 1)


async def test_a_call_cancelled_in_flight_releases_its_reservation_and_admits_the_next() -> None:
    limiter = Limiter(LimiterConfig(max_concurrency=1, tpm=1000), clock=ManualClock())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            calls = Calls(limiter, tg)
            calls.start("cancelled", Cost(input_tokens=300), hold=True)
            await settle()
            calls.start("next", Cost(input_tokens=100), hold=True)
            await settle()
            assert calls.admitted == ["cancelled"]
            calls.cancel("cancelled")
            await settle()
            assert calls.admitted == ["cancelled", "next"]
            assert calls.reservations["cancelled"].done
            assert limiter.statistics().budgets["tokens"].level == 900
            calls.finish()
    stats = limiter.statistics()
    assert (stats.in_flight, stats.failed_attempts, stats.succeeded) == (0, 0, 0)  # a cancellation is no failure


async def test_a_rate_limit_error_cools_the_whole_backend_down() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(default_cooldown_s=2.0), clock=clock)
    with anyio.fail_after(5):
        with pytest.raises(OverloadedError):
            async with limiter.reserve(Cost()):  # two calls in flight when the 429 comes
                with pytest.raises(RateLimitedError):
                    async with limiter.reserve(Cost()):
                        raise RateLimitedError("slow down", status=429, retry_after=7.0)
                raise OverloadedError("overloaded", status=529, retry_after=1.0)  # cannot shorten it
        assert (limiter.statistics().cooldown_remaining_s, limiter.statistics().cooldowns) == (7.0, 1)
        clock.advance(7.0)
        with pytest.raises(RateLimitedError):
            async with limiter.reserve(Cost()):
                raise RateLimitedError("error in stream: rate_limit_error")  # mid-stream: no status, no hint
    stats = limiter.statistics()
    assert (stats.cooldown_remaining_s, stats.cooldowns) == (2.0, 2)  # the default cooldown
    assert (stats.rate_limited, stats.overloaded, stats.failed_attempts) == (2, 1, 3)


async def test_errors_are_told_apart_by_type_not_name() -> None:
    class ReadTimeout(BackendTimeoutError):
        """A provider-specific timeout: still a timeout."""

    limiter = Limiter(LimiterConfig(adaptive=AIMDConfig(initial=8)), clock=ManualClock())
    with pytest.raises(ReadTimeout):
        async with limiter.reserve(Cost()):
            raise ReadTimeout("no byte for 600 s")
    assert limiter.statistics().concurrency_limit == 4  # an overload signal: the limit is halved


async def test_the_limiter_counts_retries_itself() -> None:
    limiter = Limiter(clock=ManualClock())
    for attempt in (1, 2, 3, 1):
        async with limiter.reserve(Cost(), attempt=attempt):
            pass
    stats = limiter.statistics()
    assert (stats.admitted, stats.retries) == (4, 2)


@pytest.mark.parametrize("headers", [{"retry-after": "nan"}, {"retry-after": "-5"}, {"retry-after": "inf"},
                                     {"retry-after-ms": "nan"}, {"retry-after-ms": "-5"}, {"retry-after": " NaN "},
                                     {"retry-after-ms": "nan", "retry-after": "nan"}])
def test_a_retry_after_that_is_no_wait_counts_as_absent(headers: dict[str, str]) -> None:
    assert retry_hints(headers) == (None, None)


def test_rate_limit_figures_a_server_cannot_mean_are_not_believed() -> None:
    limits = parse_rate_limits({"x-ratelimit-limit-tokens": "inf", "x-ratelimit-remaining-tokens": "-99999999",
                                "x-ratelimit-reset-tokens": "99999999s", "x-ratelimit-remaining-requests": "nan",
                                "x-ratelimit-reset-requests": "nan"})
    assert limits is not None and limits.tokens is not None
    assert (limits.tokens.limit, limits.tokens.remaining, limits.tokens.reset_s) == (None, 0, None)
    assert limits.requests is None  # nothing readable in it
    assert parse_duration("nan") is None and parse_duration("-5") is None and parse_duration("inf") is None


async def test_an_absurd_cooldown_is_capped_and_said() -> None:
    from structlog.testing import capture_logs

    clock = ManualClock()
    limiter = Limiter(LimiterConfig(max_cooldown_s=30.0), clock=clock)
    with capture_logs() as logs:
        limiter.cooldown(99_999_999.0)
        limiter.cooldown(float("nan"))
    assert limiter.statistics().cooldown_remaining_s == 30.0
    assert [(e["event"], e["asked_s"]) for e in logs] == [("cooldown_capped", 99_999_999.0)]


async def test_a_long_wait_is_logged_once_per_stretch_and_a_short_one_not() -> None:
    from structlog.testing import capture_logs

    long_wait_s = 5.0  # limiter.core.LONG_WAIT_S

    clock = ManualClock()
    limiter = Limiter(LimiterConfig(rpm=1), clock=clock)  # one request a minute
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            calls = Calls(limiter, tg)
            for name in "abc":
                calls.start(name)
            await settle()
            assert calls.admitted == ["a"]
            clock.advance(60.0)
            await settle()
            clock.advance(60.0)
            await settle()
    assert calls.admitted == ["a", "b", "c"]
    waits = [e for e in logs if e["event"] == "rate_limit_wait"]
    assert [(e["seconds"], e["reason"]) for e in waits] == [(60.0, "budget"), (60.0, "budget")]
    short = Limiter(LimiterConfig(), clock=clock)
    with capture_logs() as quiet:
        short.cooldown(long_wait_s)
        async with anyio.create_task_group() as tg:
            calls = Calls(short, tg)
            calls.start("d")
            await settle()
            clock.advance(long_wait_s)
            await settle()
    assert calls.admitted == ["d"] and quiet == []


class Outcomes:
    """Start reservations that record how each ended: ``admitted`` or the error's class name."""

    def __init__(self, limiter: Limiter, tg: anyio.abc.TaskGroup) -> None:
        self.limiter, self.tg = limiter, tg
        self.ended: dict[str, str] = {}
        self.release = anyio.Event()

    def start(self, name: str, cost: Cost | None = None, *, hold: bool = False) -> None:
        async def run() -> None:
            try:
                async with self.limiter.reserve(cost or Cost()):
                    self.ended[name] = "admitted"
                    if hold:
                        await self.release.wait()
            except CallWithdrawnError:
                self.ended[name] = "withdrawn"

        self.tg.start_soon(run)


async def test_withdrawing_ends_budget_and_cooldown_waits_at_once_and_spares_calls_in_flight() -> None:
    from structlog.testing import capture_logs

    clock = ManualClock()
    limiter = Limiter(LimiterConfig(rpm=1), clock=clock)  # one request a minute
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            calls = Outcomes(limiter, tg)
            calls.start("in flight", hold=True)
            calls.start("waits for the budget")
            await settle()
            limiter.withdraw_waiting()  # the clock never moves: only the withdrawal can end the wait
            await settle()
            assert calls.ended == {"in flight": "admitted", "waits for the budget": "withdrawn"}
            limiter.cooldown(60.0)
            calls.start("comes during a cooldown")
            await settle()
            assert calls.ended["comes during a cooldown"] == "withdrawn"
            calls.release.set()
    stats = limiter.statistics()
    assert (stats.withdrawn, stats.waiting, stats.in_flight, stats.succeeded) == (2, 0, 0, 0)
    assert [e["waiting"] for e in logs if e["event"] == "waiting_calls_withdrawn"] == [1]


async def test_after_withdrawal_a_call_waiting_for_a_place_gets_it_or_is_withdrawn_when_the_budget_lacks() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(max_concurrency=1, rpm=2), clock=clock)
    async with anyio.create_task_group() as tg:
        calls = Outcomes(limiter, tg)
        calls.start("a", hold=True)
        calls.start("b")
        calls.start("c")
        await settle()
        limiter.withdraw_waiting()
        await settle()
        assert calls.ended == {"a": "admitted"}  # b and c wait for a place, which a frees when it ends
        calls.release.set()
        await settle()
    assert calls.ended == {"a": "admitted", "b": "admitted", "c": "withdrawn"}  # then the budget was spent


async def test_a_call_that_waited_for_a_place_waits_for_the_budget_once_the_place_frees() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(max_concurrency=1, rpm=1), clock=clock)
    async with anyio.create_task_group() as tg:
        calls = Outcomes(limiter, tg)
        calls.start("a", hold=True)
        calls.start("b")
        await settle()
        clock.advance(1.0)
        calls.release.set()  # a place is free, but the budget holds b for 59 s more
        await settle()
        assert calls.ended == {"a": "admitted"}
        clock.advance(59.0)
        await settle()
    assert calls.ended == {"a": "admitted", "b": "admitted"}  # it did not sleep on, waiting for a place


async def test_a_retry_backoff_ends_at_once_when_waits_are_withdrawn() -> None:
    clock = ManualClock()
    limiter = Limiter(clock=clock)
    ended: list[str] = []

    async def back_off() -> None:
        with pytest.raises(CallWithdrawnError):
            await limiter.pause(30.0)
        ended.append("withdrawn")

    async with anyio.create_task_group() as tg:
        tg.start_soon(back_off)
        await settle()
        limiter.withdraw_waiting()
    assert ended == ["withdrawn"]
    with pytest.raises(CallWithdrawnError):
        await limiter.pause(0.0)  # and every later one
    assert limiter.statistics().withdrawn == 2


async def test_a_long_wait_is_shown_in_the_statistics_while_it_lasts() -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(tpm=600), clock=clock)  # ten tokens a second
    async with anyio.create_task_group() as tg:
        calls = Outcomes(limiter, tg)
        calls.start("a", Cost(input_tokens=600), hold=True)  # refunded only if it ends unsettled
        calls.start("b", Cost(input_tokens=300))
        await settle()
        stats = limiter.statistics()
        assert (stats.long_wait_for, stats.long_wait_left_s) == ("tokens", 30.0)
        clock.advance(10.0)
        assert limiter.statistics().long_wait_left_s == 20.0
        clock.advance(20.0)
        await settle()
        calls.release.set()
    stats = limiter.statistics()
    assert calls.ended == {"a": "admitted", "b": "admitted"}
    assert (stats.long_wait_for, stats.long_wait_left_s) == (None, 0.0)  # no call waits now
    short = Limiter(LimiterConfig(tpm=600), clock=clock)
    async with anyio.create_task_group() as tg:
        calls = Outcomes(short, tg)
        calls.start("c", Cost(input_tokens=600), hold=True)
        calls.start("d", Cost(input_tokens=10))  # one second: no news
        await settle()
        assert short.statistics().long_wait_for is None
        clock.advance(1.0)
        calls.release.set()


@pytest.mark.parametrize("withdrawn", [False, True], ids=["run goes on", "run interrupted"])
async def test_a_call_waiting_for_a_place_freed_by_a_rate_limited_call_waits_out_the_cooldown(withdrawn: bool) -> None:
    clock = ManualClock()
    limiter = Limiter(LimiterConfig(max_concurrency=1), clock=clock)
    fail = anyio.Event()

    async def refused() -> None:  # holds the one place, then gets a 429 and is not retried
        with pytest.raises(RateLimitedError):
            async with limiter.reserve(Cost()):
                await fail.wait()
                raise RateLimitedError("429", retry_after=10.0)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            calls = Outcomes(limiter, tg)
            tg.start_soon(refused)
            await settle()
            calls.start("waits for the place")
            await settle()
            if withdrawn:
                limiter.withdraw_waiting()  # it waits for a place: it waits on
                await settle()
                assert calls.ended == {}
            fail.set()  # the place frees as a 10 s cooldown starts
            await settle()
            if not withdrawn:
                assert calls.ended == {}
                clock.advance(10.0)
                await settle()
    assert calls.ended == {"waits for the place": "withdrawn" if withdrawn else "admitted"}
