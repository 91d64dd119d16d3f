"""A budget shared by several limiters through leases, with a manual clock (no sleeping)."""

from __future__ import annotations

import anyio
import pytest

from open_strawberry.distributed import BudgetFeed, BudgetPool, LocalLeases, shared_budgets
from open_strawberry.limiter import Cost, Limiter, LimiterConfig, ManualClock
from open_strawberry.messages import Usage


def test_the_pool_grants_what_it_holds_and_refills_at_the_budget_rate() -> None:
    clock = ManualClock()
    pool = BudgetPool({"requests": 60.0}, clock=clock)
    assert pool.lease({"requests": 50}) == {"requests": 50}
    assert pool.lease({"requests": 50}) == {"requests": 10}  # it started full: 60, no more
    assert pool.lease({"requests": 5, "tokens": 100}) == {}  # empty, and tokens are not its to limit
    clock.advance(2.0)  # 60 per minute: one a second
    assert pool.lease({"requests": 5}) == {"requests": pytest.approx(2.0)}
    pool.give_back({"requests": 3})
    assert pool.lease({"requests": 5}) == {"requests": pytest.approx(3.0)}
    assert pool.statistics()["requests"]["granted"] == pytest.approx(65.0)


def test_no_holder_gets_more_than_an_equal_share_of_what_the_pool_holds() -> None:
    clock = ManualClock()
    pool = BudgetPool({"requests": 60.0}, clock=clock, window_s=1.0)
    assert pool.lease({"requests": 10}, "a") == {"requests": 10}
    assert pool.lease({"requests": 100}, "b") == {"requests": 25}  # 50 left, two holders
    clock.advance(1.5)  # "a" has not asked for a while: "b" is alone
    assert pool.lease({"requests": 100}, "b") == {"requests": pytest.approx(26.5)}


def test_only_the_budgets_that_are_set_are_shared() -> None:
    assert shared_budgets(rpm=600, tpm=None, output_tpm=1000) == {"requests": 600.0, "output_tokens": 1000.0}
    assert shared_budgets() == {}


def test_a_limiter_refuses_a_budget_it_does_not_know() -> None:
    feed = BudgetFeed(LocalLeases(BudgetPool({})), {"requests": 60.0})
    with pytest.raises(ValueError, match="unknown budget"):
        Limiter(buckets={"calls": feed.buckets["requests"]})


class Workers:
    """Limiters fed from one pool, each with calls started in the background."""

    def __init__(self, pool: BudgetPool, clock: ManualClock, count: int, tg: anyio.abc.TaskGroup) -> None:
        self.clock, self.tg = clock, tg
        self.feeds = [BudgetFeed(LocalLeases(pool, f"w{i}"), {"requests": 60.0}, clock=clock) for i in range(count)]
        self.limiters = [Limiter(LimiterConfig(), clock=clock, buckets=feed.buckets) for feed in self.feeds]
        self.admitted = [0] * count

    def call(self, worker: int, calls: int = 1) -> None:
        async def one() -> None:
            async with self.limiters[worker].reserve(Cost()) as reservation:
                self.admitted[worker] += 1
                reservation.settle(usage=Usage())

        for _ in range(calls):
            self.tg.start_soon(one)

    async def round(self) -> None:
        await anyio.wait_all_tasks_blocked()
        for feed, limiter in zip(self.feeds, self.limiters, strict=True):
            await feed.feed_once(limiter)
        await anyio.wait_all_tasks_blocked()


async def test_workers_together_never_exceed_the_budget_and_use_all_of_it() -> None:
    clock = ManualClock()
    pool = BudgetPool({"requests": 60.0}, clock=clock)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            workers = Workers(pool, clock, 3, tg)
            for worker in range(3):
                workers.call(worker, 100)  # far more calls than the budget allows
            await workers.round()
            assert sum(workers.admitted) == 60  # the burst a full bucket allows, no more
            for _ in range(200):  # 20 s at 0.1 s a round: 20 more
                clock.advance(0.1)
                await workers.round()
            assert sum(workers.admitted) == pytest.approx(80, abs=1)
            assert all(count > 0 for count in workers.admitted)
            tg.cancel_scope.cancel()


async def test_what_an_idle_worker_holds_goes_to_the_busy_one() -> None:
    clock = ManualClock()
    pool = BudgetPool({"requests": 60.0}, clock=clock)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            workers = Workers(pool, clock, 2, tg)
            workers.call(0, 30)
            await workers.round()
            assert workers.admitted == [30, 0]
            for _ in range(20):  # worker 0 goes idle: what it holds beyond its reserve goes back
                clock.advance(0.1)
                await workers.round()
            assert workers.feeds[0].buckets["requests"].level < 1
            workers.call(1, 40)
            await workers.round()
            assert workers.admitted[1] >= 29  # the rest of the burst, not a share of it
            tg.cancel_scope.cancel()


async def test_a_call_that_used_more_than_it_reserved_is_charged_to_the_pool() -> None:
    clock = ManualClock()
    pool = BudgetPool({"tokens": 1000.0}, clock=clock)
    feed = BudgetFeed(LocalLeases(pool), {"tokens": 1000.0}, clock=clock)
    limiter = Limiter(LimiterConfig(), clock=clock, buckets=feed.buckets)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            async def call() -> None:
                async with limiter.reserve(Cost(input_tokens=100)) as reservation:
                    reservation.settle(usage=Usage(input_tokens=300))

            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            assert limiter.waiting_cost() == {"requests": 1, "tokens": 100, "input_tokens": 100, "output_tokens": 0}
            await feed.feed_once(limiter)  # lends 100; the call uses 300: a debt of 200
            await anyio.wait_all_tasks_blocked()
            assert feed.buckets["tokens"].level == pytest.approx(-200)
            await feed.feed_once(limiter)  # the debt is paid from the pool
    assert feed.buckets["tokens"].level >= 0
    await feed.aclose()
    figures = pool.statistics()["tokens"]
    assert figures["granted"] - figures["returned"] == pytest.approx(300)  # what was used, no more


async def test_closing_a_feed_gives_back_what_it_holds() -> None:
    clock = ManualClock()
    pool = BudgetPool({"requests": 60.0}, clock=clock)
    feed = BudgetFeed(LocalLeases(pool), {"requests": 60.0}, clock=clock)
    feed.buckets["requests"].level = 12.0
    await feed.aclose()
    assert feed.buckets["requests"].level == 0
    assert pool.statistics()["requests"]["returned"] == 12.0
