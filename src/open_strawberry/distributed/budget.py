"""One rate budget for many processes: a :class:`BudgetPool` grants leases, a
:class:`BudgetFeed` in each process feeds them to that process's :class:`~open_strawberry.limiter.Limiter`.

Why leases and not a split. Splitting ``--rpm`` into one fixed share per worker is exact only
while every worker is busy: a worker that waits on a slow server, or has finished its shard,
leaves its share unused while the others are held to theirs. Here the budget exists once, in
the pool: token buckets at the full per-minute figures, starting full, refilling continuously,
exactly as the limiter of a single process keeps them. A worker takes from it only what its
waiting calls need (plus a little, so a busy worker does not wait on a round trip for every
call), and gives back what it no longer needs, so what one worker leaves unused, another gets.
The server sees at most the budget: a unit is granted once, and a worker spends only what it
was granted.

On the worker side nothing in the pipeline changes. Its limiter gets, for each shared budget, a
bucket that never refills by itself (``Limiter(buckets=feed.buckets)``); the feed's loop looks
at what the waiting calls would take (:meth:`Limiter.waiting_cost`), leases the difference from
the pool, and credits it (:meth:`Limiter.credit`), which admits the calls that now fit. A call
that used more tokens than it reserved leaves a debt in its bucket, and the next lease pays it:
the pool is charged what was really used. The server's ``remaining`` figures do not cut a
lease (they count every worker's calls, rounded down, and are stale when a reply arrives: they
would throw away what the pool granted since); a 429 still pauses the worker (cooldown).
Budgets the run does not set are learned from the headers by each worker, as in one process.

Cost: one round trip per worker per ``interval_s`` while it has calls waiting (none while its
lease covers them). With the pool in one Ray actor, that is ``workers / interval_s`` small calls
per second, a few thousand per second being what one actor serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from open_strawberry.limiter.buckets import TokenBucket
from open_strawberry.limiter.clock import Clock, SystemClock
from open_strawberry.limiter.core import Limiter

__all__ = ["BudgetFeed", "BudgetPool", "LeaseSource", "LocalLeases", "shared_budgets"]


def shared_budgets(*, rpm: float | None = None, tpm: float | None = None, input_tpm: float | None = None,
                   output_tpm: float | None = None) -> dict[str, float]:
    """``{budget: units per minute}`` of the budgets that are set, named as the limiter names them."""
    figures = {"requests": rpm, "tokens": tpm, "input_tokens": input_tpm, "output_tokens": output_tpm}
    return {name: float(value) for name, value in figures.items() if value is not None}


class BudgetPool:
    """The budgets of a whole run, per minute, as token buckets that start full.

    :meth:`lease` grants at most what the buckets hold, and no holder more than an equal share
    of it among the holders seen in the last ``window_s`` (so the first to ask does not take
    everything while the others get nothing; what is not granted stays in the pool for the next
    ask). :meth:`give_back` returns what a worker did not use. Synchronous and not thread-safe:
    it lives in one place (a Ray actor runs one call at a time).
    """

    def __init__(self, budgets: Mapping[str, float], *, clock: Clock | None = None, window_s: float = 1.0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.window_s = window_s
        self._seen: dict[str, float] = {}  # {holder: when it last asked}
        now = self.clock.now()
        self._buckets = {name: TokenBucket(per_minute, now=now) for name, per_minute in budgets.items()}
        self.granted = dict.fromkeys(self._buckets, 0.0)  # {budget: units granted so far}
        self.returned = dict.fromkeys(self._buckets, 0.0)
        self.leases = 0

    def lease(self, wanted: Mapping[str, float], holder: str = "") -> dict[str, float]:
        """Grant what the buckets hold of ``wanted`` (``{budget: units}``), at most, and at most
        an equal share among the recent holders; budgets the pool does not keep are not limited
        by it, and get nothing."""
        now = self.clock.now()
        self.leases += 1
        self._seen[holder] = now
        self._seen = {name: seen for name, seen in self._seen.items() if now - seen <= self.window_s}
        holders = len(self._seen)
        granted: dict[str, float] = {}
        for name, amount in wanted.items():
            bucket = self._buckets.get(name)
            if bucket is None or amount <= 0:
                continue
            bucket.refill(now)
            grant = max(0.0, min(amount, bucket.level / holders))
            if grant > 0:
                bucket.take(grant)
                self.granted[name] += grant
                granted[name] = grant
        return granted

    def give_back(self, amounts: Mapping[str, float]) -> None:
        """Return units a worker was granted and did not use."""
        now = self.clock.now()
        for name, amount in amounts.items():
            bucket = self._buckets.get(name)
            if bucket is not None and amount > 0:
                bucket.refill(now)
                bucket.give(amount)
                self.returned[name] += amount

    def statistics(self) -> dict[str, dict[str, float]]:
        """``{budget: {level, capacity, granted, returned}}``."""
        now = self.clock.now()
        for bucket in self._buckets.values():
            bucket.refill(now)
        return {name: {"level": bucket.level, "capacity": bucket.capacity, "granted": self.granted[name],
                       "returned": self.returned[name]} for name, bucket in self._buckets.items()}


class LeaseSource(Protocol):
    """Where a :class:`BudgetFeed` takes its leases: a pool in this process, or one behind a
    Ray actor. Both calls may block (a round trip); cancellation abandons the call."""

    async def lease(self, wanted: dict[str, float]) -> dict[str, float]: ...

    async def give_back(self, amounts: dict[str, float]) -> None: ...


class LocalLeases:
    """A :class:`LeaseSource` over a pool in this process (several runs in one process, tests)."""

    def __init__(self, pool: BudgetPool, holder: str = "") -> None:
        self.pool = pool
        self.holder = holder

    async def lease(self, wanted: dict[str, float]) -> dict[str, float]:
        await anyio.lowlevel.checkpoint()
        return self.pool.lease(wanted, self.holder)

    async def give_back(self, amounts: dict[str, float]) -> None:
        await anyio.lowlevel.checkpoint()
        self.pool.give_back(amounts)


class _LeasedBucket(TokenBucket):
    """A worker's lease of a shared budget: it never refills by itself, and the server's
    ``remaining`` figures do not cut it. They count every worker's calls, rounded down, and are
    stale by the time a reply arrives: applied to a lease, they would throw away units the pool
    granted since (a 429 still pauses the worker, by the limiter's cooldown)."""

    __slots__ = ()

    def correct(self, remaining: float) -> None:
        return


class BudgetFeed:
    """Feeds one limiter's shared budgets from a :class:`LeaseSource`.

    ``buckets`` are the buckets to hand to the limiter (``Limiter(..., buckets=feed.buckets)``):
    empty at first and never refilled by themselves. :meth:`run` keeps them fed until
    cancelled; :meth:`aclose` gives back what they still hold. Each round (every
    ``interval_s``) it asks for what the waiting calls need beyond the level, plus a reserve of
    ``lookahead_s`` of recent use (and any debt), and when no call waits it returns what exceeds
    twice that reserve: an idle worker holds nothing.
    """

    def __init__(self, source: LeaseSource, budgets: Mapping[str, float], *, interval_s: float = 0.05,
                 lookahead_s: float = 0.5, clock: Clock | None = None) -> None:
        self.source = source
        self.interval_s = interval_s
        self.lookahead_s = lookahead_s
        self.clock: Clock = clock or SystemClock()
        now = self.clock.now()
        self.buckets: dict[str, TokenBucket] = {}
        for name, per_minute in budgets.items():
            bucket = _LeasedBucket(per_minute, now=now, per_s=0.0)
            bucket.level = 0.0  # everything it holds comes from the pool
            self.buckets[name] = bucket
        self._rate = dict.fromkeys(self.buckets, 0.0)  # {budget: units used per second, smoothed}
        self._mark = dict.fromkeys(self.buckets, 0.0)  # {budget: level when the use was last measured}
        self._added = dict.fromkeys(self.buckets, 0.0)  # {budget: units credited since, less those returned}
        self._last_at = now
        self.leased = dict.fromkeys(self.buckets, 0.0)
        self.rounds = 0

    async def run(self, limiter: Limiter, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Feed ``limiter`` until cancelled (it must have been built with :attr:`buckets`)."""
        task_status.started()
        while True:
            await self.feed_once(limiter)
            await self.clock.sleep(self.interval_s)

    async def feed_once(self, limiter: Limiter) -> None:
        """One round: learn the recent use, then lease what is missing or return the surplus."""
        self.rounds += 1
        now = self.clock.now()
        elapsed = max(now - self._last_at, self.interval_s)  # rounds run late, never early
        waiting = limiter.waiting_cost()
        wanted: dict[str, float] = {}
        surplus: dict[str, float] = {}
        for name, bucket in self.buckets.items():
            # calls admitted by a credit, by what a release left, or refunded: all in the level's change
            used = max(0.0, self._mark[name] + self._added[name] - bucket.level)
            self._mark[name], self._added[name] = bucket.level, 0.0
            self._rate[name] = 0.7 * self._rate[name] + 0.3 * used / elapsed
            reserve = self._rate[name] * self.lookahead_s
            target = min(waiting[name] + reserve, bucket.capacity)  # a debt (level < 0) is paid too
            if bucket.level < target:
                wanted[name] = target - bucket.level
            elif waiting[name] == 0 and bucket.level > 2 * reserve:
                surplus[name] = bucket.level - reserve
        self._last_at = now
        if surplus:
            for name, amount in surplus.items():
                self.buckets[name].take(amount)
                self._added[name] -= amount
            await self.source.give_back(surplus)
        if wanted:
            granted = await self.source.lease(wanted)
            for name, amount in granted.items():
                self.leased[name] += amount
                self._added[name] += amount
                limiter.credit(name, amount)

    async def aclose(self) -> None:
        """Give back what the buckets hold (a debt stays with the pool: it was spent)."""
        held = {name: bucket.level for name, bucket in self.buckets.items() if bucket.level > 0}
        for name in held:
            self.buckets[name].level = 0.0
        if held:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.source.give_back(held)
