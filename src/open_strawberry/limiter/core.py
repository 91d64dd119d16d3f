"""The :class:`Limiter`: one per backend, shared by every actor that calls that backend.

It admits a call when all of these hold:

* fewer than the concurrency cap are in flight (a fixed ``max_concurrency``, or the AIMD
  limit when ``adaptive`` is set);
* no cooldown is running (a 429, 529 or 503 pauses *new* calls on the whole backend, so a
  burst of rate-limit errors does not burn every call's retries);
* each budget (requests, tokens, input and output tokens per minute) holds the call's
  estimated cost. The reservation is settled to the real usage when the call ends.

A call holds its place for as long as it runs, and gives it back on every path::

    async with limiter.reserve(cost) as reservation:
        completion = await backend.complete(request)
        reservation.settle(usage=completion.usage, rate_limits=completion.rate_limits,
                           latency_s=completion.timings.e2e_s)

Leaving the block without :meth:`Reservation.settle` (cancellation included) refunds the token
reservation; leaving it by an exception also counts a failed attempt, and a
:class:`~open_strawberry.errors.RateLimitedError` or
:class:`~open_strawberry.errors.OverloadedError` starts a cooldown of its ``retry_after``
(``default_cooldown_s`` when the server gave none, ``max_cooldown_s`` at most: a server that asks
for three years does not stall every other call for them).

A call that must wait longer than ``LONG_WAIT_S`` is logged (``rate_limit_wait``, with the seconds
and why: a cooldown or a budget), once for each stretch of waiting, and shown in ``statistics()``
(``long_wait_for``, ``long_wait_left_s``) while it lasts, so a run held up by its budgets says so
instead of going quiet. A wait for a budget is bounded by the budget's own refill (one minute from
empty), whatever reset a server announced: resets are not used. :meth:`Limiter.withdraw_waiting`
(the run was interrupted) ends every wait for a budget, a cooldown or a retry's backoff at once,
with :class:`~open_strawberry.errors.CallWithdrawnError`.

Waiting calls are served in arrival order, with one exception that keeps big calls from blocking
small ones: a call whose tokens do not fit yet may be passed by later calls that do fit, but only
until it has waited ``fairness_s``; from then on nothing passes it and the budget fills up for it.
So small calls are not held up by a big one, and the big one is not starved.

Budgets set by hand win; unset budgets are learned from the rate-limit headers of the first
response that carries them, and every response's ``remaining`` figures correct the levels
downward.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
import structlog

from open_strawberry.errors import BackendTimeoutError, CallWithdrawnError, OverloadedError, RateLimitedError
from open_strawberry.limiter.aimd import AIMD
from open_strawberry.limiter.buckets import TokenBucket
from open_strawberry.limiter.clock import Clock, SystemClock
from open_strawberry.limiter.config import BUDGETS as _BUDGETS
from open_strawberry.limiter.config import Cost, LimiterConfig
from open_strawberry.limiter.statistics import BudgetStatistics, LimiterStatistics, wait_reason
from open_strawberry.messages import RateLimits, Usage

__all__ = ["LONG_WAIT_S", "BudgetStatistics", "Cost", "Limiter", "LimiterConfig", "LimiterStatistics", "Reservation"]

LONG_WAIT_S = 5.0  # a wait longer than this is logged, and shown in the statistics
_PLACE = "place"  # what a call waits for when the concurrency cap is reached
_log = structlog.get_logger("open_strawberry.limiter")


class Reservation:
    """An admitted call's hold on its backend's limiter, from :meth:`Limiter.reserve`.

    ``cost`` is what was reserved and ``admitted_at`` when (on the limiter's clock). The
    ``async with`` block that handed it out gives it back when it ends, whatever the path.
    """

    __slots__ = ("_done", "_limiter", "admitted_at", "charged", "cost")

    def __init__(self, limiter: Limiter, cost: Cost, admitted_at: float, charged: frozenset[str]) -> None:
        self._limiter = limiter
        self.cost = cost
        self.admitted_at = admitted_at
        self.charged = charged  # the budgets its reservation was taken from
        self._done = False

    @property
    def done(self) -> bool:
        """Settled or released: the limiter no longer counts this call in flight."""
        return self._done

    def settle(self, *, usage: Usage, rate_limits: RateLimits | None = None, latency_s: float | None = None) -> None:
        """The call succeeded: charge or refund the difference between the reservation and
        ``usage``, learn from ``rate_limits``, feed ``latency_s`` to the adaptive limit, and
        free the place now (the rest of the block no longer holds it). Settle at most once."""
        if self._done:
            raise RuntimeError("this reservation was already settled or released")
        self._limiter._release(self, usage=usage, rate_limits=rate_limits, latency_s=latency_s)


class _Waiter:
    __slots__ = ("cost", "enqueued", "reservation", "scope")

    def __init__(self, cost: Cost, enqueued: float) -> None:
        self.cost = cost
        self.enqueued = enqueued
        self.reservation: Reservation | None = None
        self.scope: anyio.CancelScope | None = None  # while it sleeps: cancelling it wakes the call


class Limiter:
    """Admission for one backend's calls; see the module docstring for the rules.

    :meth:`reserve` blocks until the call may go (cancellation removes it from the line) and
    holds its place until the block ends. It runs on one event loop; it is not thread-safe.
    """

    def __init__(self, config: LimiterConfig | None = None, *, clock: Clock | None = None,
                 buckets: Mapping[str, TokenBucket] | None = None) -> None:
        """``buckets`` hands in budgets kept elsewhere, by name (``requests``, ``tokens``,
        ``input_tokens``, ``output_tokens``): a bucket several limiters share, or one that does
        not refill by itself (``per_s=0``) and is fed with :meth:`credit` from a budget shared
        between processes. They count as set by hand, and win over the config's figure."""
        self.config = config or LimiterConfig()
        self.clock: Clock = clock or SystemClock()
        now = self.clock.now()
        self._buckets: dict[str, TokenBucket] = {}
        for name, value in zip(_BUDGETS, (self.config.rpm, self.config.tpm, self.config.input_tpm,
                                          self.config.output_tpm), strict=True):
            if value is not None:
                self._buckets[name] = TokenBucket(value, now=now)
        for name, bucket in (buckets or {}).items():
            if name not in _BUDGETS:
                raise ValueError(f"unknown budget {name!r}: use one of {', '.join(_BUDGETS)}")
            self._buckets[name] = bucket
        self._manual = set(self._buckets)
        self._aimd = AIMD(self.config.adaptive) if self.config.adaptive is not None else None
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._cooldown_until = -math.inf
        self._quiet_until = -math.inf  # no new rate_limit_wait line before then: one per stretch
        self._long_wait: tuple[float, str] = (-math.inf, "")  # (until, what for): the stretch announced last
        self._withdrawing = False
        self._pauses: set[anyio.CancelScope] = set()  # retries' backoffs under way (pause)
        self._for_place: set[_Waiter] = set()  # asleep until a place frees (no deadline of their own)
        self.withdrawn = 0
        self._output_average: float | None = None
        self.admitted = 0
        self.succeeded = 0
        self.failed_attempts = 0
        self._retries = 0  # the limiter's own count, from reserve(attempt=...)
        self.rate_limited = 0
        self.overloaded = 0
        self.cooldowns = 0
        self.wait_total_s = 0.0

    # ------------------------------------------------------------------ public

    @property
    def concurrency_limit(self) -> int | None:
        caps = [c for c in (self.config.max_concurrency, self._aimd.current if self._aimd else None) if c is not None]
        return min(caps) if caps else None

    def output_estimate(self, max_tokens: int) -> int:
        """Output tokens to reserve: the running average of real outputs, capped by ``max_tokens``."""
        if self._output_average is None:
            return max_tokens
        return min(max_tokens, math.ceil(self._output_average))

    @asynccontextmanager
    async def reserve(self, cost: Cost, *, attempt: int = 1) -> AsyncIterator[Reservation]:
        """Wait until a call of ``cost`` may go, then hold its place until the block ends.

        Blocks while the call does not fit (concurrency cap, cooldown, budgets, fairness);
        cancelled while waiting, it leaves the line. ``attempt`` is which attempt of one call
        this is: every attempt after the first counts in ``statistics().retries``.

        Call :meth:`Reservation.settle` with the usage when the call succeeds. Leaving the
        block without it refunds the token reservation (the server counts no tokens for a
        call it refused, nor for one we gave up on); leaving by an exception also counts a
        failed attempt, learns from the error's ``rate_limits``, feeds overloads and
        timeouts to the adaptive limit, and starts the cooldown of a rate-limit or overload
        error. Cancellation only releases: it is no failure of the backend.
        """
        reservation = await self._admit(cost)
        if attempt > 1:
            self._retries += 1
        try:
            yield reservation
        except Exception as exc:
            if not reservation.done:
                self._release(reservation, error=exc)
            raise
        finally:
            if not reservation.done:  # no settle, or cancelled: give the place back
                self._release(reservation)

    async def _admit(self, cost: Cost) -> Reservation:
        waiter = _Waiter(cost, self.clock.now())
        self._queue.append(waiter)
        try:
            while True:
                self._dispatch()
                if waiter.reservation is not None:
                    self.wait_total_s += self.clock.now() - waiter.enqueued
                    return waiter.reservation
                seconds, reason = self._wake_in(waiter)
                if self._withdrawing and reason != _PLACE:
                    self.withdrawn += 1
                    raise CallWithdrawnError(f"the run was interrupted while this call waited for "
                                             f"{wait_reason(reason)}: it was never sent")
                if reason == _PLACE:
                    self._for_place.add(waiter)
                with anyio.CancelScope() as scope:
                    waiter.scope = scope
                    await self.clock.sleep(self._announced(seconds, reason))
                waiter.scope = None
                self._for_place.discard(waiter)
        except BaseException:
            self._for_place.discard(waiter)
            if waiter.reservation is not None:  # admitted, then cancelled before it could return
                self._release(waiter.reservation)
            else:
                self._queue.remove(waiter)
                self._dispatch()
            raise

    def _release(self, reservation: Reservation, *, usage: Usage | None = None,
                 rate_limits: RateLimits | None = None, latency_s: float | None = None,
                 error: Exception | None = None) -> None:
        """Give a place back: refund or charge the difference between its reservation and
        ``usage``, learn from ``rate_limits``, and feed the adaptive limit. Without usage
        (an error, a cancellation) the token reservation is refunded: the server did not
        count tokens for a call it refused."""
        reservation._done = True
        self._in_flight -= 1
        now = self.clock.now()
        self._refill(now)
        spent = None if usage is None else Cost(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        for name, bucket in self._buckets.items():
            if name == "requests":
                continue
            if name not in reservation.charged:  # learned after this call was admitted: charge what it used
                if spent is not None:
                    bucket.take(spent.of(name))
                continue
            reserved = reservation.cost.of(name)
            if spent is None:
                bucket.give(reserved)
            else:
                used = spent.of(name)
                bucket.give(reserved - used) if used <= reserved else bucket.take(used - reserved)
        if usage is not None and error is None:
            self.succeeded += 1
            average = self._output_average
            self._output_average = usage.output_tokens if average is None else 0.9 * average + 0.1 * usage.output_tokens
            if self._aimd is not None:
                self._aimd.on_success(latency_s, now)
        if error is not None:
            self.failed_attempts += 1
            if isinstance(error, RateLimitedError):
                self.rate_limited += 1
            elif isinstance(error, OverloadedError):
                self.overloaded += 1
            if isinstance(error, (RateLimitedError, OverloadedError)):
                self.cooldown(error.retry_after)
            if self._aimd is not None and isinstance(error, (RateLimitedError, OverloadedError, BackendTimeoutError)):
                self._aimd.on_overload(now)
            rate_limits = rate_limits or getattr(error, "rate_limits", None)
        if rate_limits is not None:
            self.observe(rate_limits)
        self._dispatch()

    def credit(self, budget: str, amount: float) -> None:
        """Add ``amount`` to ``budget`` now (units granted from elsewhere, such as a budget shared
        between processes), then admit the waiting calls that fit."""
        self._buckets[budget].give(amount)
        self._dispatch()

    def waiting_cost(self) -> dict[str, float]:
        """What the calls waiting now would take from each budget, summed: ``{budget: units}``."""
        return {name: sum(waiter.cost.of(name) for waiter in self._queue) for name in _BUDGETS}

    def withdraw_waiting(self) -> None:
        """End every wait for a budget, a cooldown or a retry's backoff, for good (the run was
        interrupted): each call waiting for one, now or later, raises at once, unsent,
        :class:`~open_strawberry.errors.CallWithdrawnError`; its trace is not written, and a rerun
        makes it again whole (earlier turns and attempts are paid again). A call waiting only
        for a free place waits on, and calls in flight finish. Idempotent."""
        if self._withdrawing:
            return
        self._withdrawing = True
        if self._queue or self._pauses:
            _log.warning("waiting_calls_withdrawn", waiting=len(self._queue), backing_off=len(self._pauses),
                         hint="never sent: their traces are not written, and a rerun makes them")
        for scope in [*self._pauses, *(waiter.scope for waiter in self._queue if waiter.scope is not None)]:
            scope.cancel()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` on the limiter's clock (a retry's backoff); raises
        :class:`~open_strawberry.errors.CallWithdrawnError` at once, before or during the sleep,
        once :meth:`withdraw_waiting` was called."""
        if not self._withdrawing:
            with anyio.CancelScope() as scope:
                self._pauses.add(scope)
                try:
                    await self.clock.sleep(seconds)
                finally:
                    self._pauses.discard(scope)
        if self._withdrawing:
            self.withdrawn += 1
            raise CallWithdrawnError("the run was interrupted while this call waited to be retried: "
                                     "it was not sent again")

    def cooldown(self, seconds: float | None) -> None:
        """Pause new calls for ``seconds`` (the default cooldown when ``None``); a running
        cooldown is only ever extended."""
        seconds = self.config.default_cooldown_s if seconds is None else seconds
        if not seconds > 0:  # NaN too
            return
        if seconds > self.config.max_cooldown_s:
            _log.warning("cooldown_capped", asked_s=seconds, cooldown_s=self.config.max_cooldown_s)
            seconds = self.config.max_cooldown_s
        until = self.clock.now() + seconds
        if until > self._cooldown_until:
            self._cooldown_until = until
            self.cooldowns += 1

    def observe(self, rate_limits: RateLimits) -> None:
        """Correct the budgets to what the server reported."""
        now = self.clock.now()
        for name in _BUDGETS:
            window = getattr(rate_limits, name)
            if window is None:
                continue
            bucket = self._buckets.get(name)
            if bucket is None and window.limit and self.config.learn_from_headers:
                bucket = self._buckets[name] = TokenBucket(window.limit, now=now)
            elif bucket is not None and window.limit and name not in self._manual and window.limit != bucket.capacity:
                bucket.resize(window.limit)
            if bucket is not None and window.remaining is not None:
                bucket.refill(now)
                bucket.correct(window.remaining)

    def statistics(self) -> LimiterStatistics:
        now = self.clock.now()
        self._refill(now)
        until, long_wait_for = self._long_wait
        waiting = bool(self._queue) and now < until
        return LimiterStatistics(
            in_flight=self._in_flight,
            peak_in_flight=self._peak_in_flight,
            concurrency_limit=self.concurrency_limit,
            waiting=len(self._queue),
            admitted=self.admitted,
            succeeded=self.succeeded,
            failed_attempts=self.failed_attempts,
            retries=self._retries,
            rate_limited=self.rate_limited,
            overloaded=self.overloaded,
            cooldowns=self.cooldowns,
            cooldown_remaining_s=max(0.0, self._cooldown_until - now),
            wait_total_s=self.wait_total_s,
            budgets={name: BudgetStatistics(level=b.level, capacity=b.capacity) for name, b in self._buckets.items()},
            long_wait_for=long_wait_for if waiting else None,
            long_wait_left_s=max(0.0, until - now) if waiting else 0.0,
            withdrawn=self.withdrawn,
        )

    # --------------------------------------------------------------- internals

    def _refill(self, now: float) -> None:
        for bucket in self._buckets.values():
            bucket.refill(now)

    def _fits(self, cost: Cost) -> bool:
        return all(bucket.fits(cost.of(name)) for name, bucket in self._buckets.items())

    def _dispatch(self) -> None:
        """Admit every waiter that may go now, in order (see the fairness rule); then, if a
        place is free (during a cooldown too), wake whoever slept for one."""
        if not self._queue:
            return
        now = self.clock.now()
        if now >= self._cooldown_until:
            self._admit_in_order(now)
        cap = self.concurrency_limit
        if self._for_place and (cap is None or self._in_flight < cap):  # whoever slept for a place: wait for time
            for waiter in self._for_place:
                if waiter.scope is not None:
                    waiter.scope.cancel()
            self._for_place.clear()

    def _admit_in_order(self, now: float) -> None:
        self._refill(now)
        cap = self.concurrency_limit
        for waiter in list(self._queue):
            if cap is not None and self._in_flight >= cap:
                break
            if self._fits(waiter.cost):
                for name, bucket in self._buckets.items():
                    bucket.take(waiter.cost.of(name))
                self._queue.remove(waiter)
                self._in_flight += 1
                self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
                self.admitted += 1
                waiter.reservation = Reservation(self, waiter.cost, now, frozenset(self._buckets))
                if waiter.scope is not None:
                    waiter.scope.cancel()
            elif now - waiter.enqueued >= self.config.fairness_s and not self._withdrawing:
                break  # it has waited long enough: nobody passes it any more

    def _wake_in(self, waiter: _Waiter) -> tuple[float, str]:
        """How long ``waiter`` may sleep before the state could let it in without a release
        (a release, a refund or an admission dispatches and wakes whoever may go), and what
        it waits for: the cooldown, a free place, or a budget (by name)."""
        now = self.clock.now()
        if now < self._cooldown_until:
            return self._cooldown_until - now, "cooldown"
        cap = self.concurrency_limit
        if cap is not None and self._in_flight >= cap:
            return math.inf, _PLACE
        for ahead in self._queue:
            if ahead is waiter or self._withdrawing:
                break
            if now - ahead.enqueued >= self.config.fairness_s:
                return self._time_to_fit(ahead.cost)  # nobody passes it: wait for its turn
        return self._time_to_fit(waiter.cost)

    def _announced(self, seconds: float, reason: str) -> float:
        """``seconds``, after logging a wait longer than ``LONG_WAIT_S`` (once per stretch)."""
        now = self.clock.now()
        if LONG_WAIT_S < seconds < math.inf and now >= self._quiet_until:  # a wait for a free place is no news
            self._quiet_until = now + seconds
            self._long_wait = (now + seconds, reason)
            budget = {} if reason == "cooldown" else {"budget": reason}
            _log.warning("rate_limit_wait", seconds=round(seconds, 1), waiting=len(self._queue),
                         reason="cooldown" if reason == "cooldown" else "budget", **budget)
        return seconds

    def _time_to_fit(self, cost: Cost) -> tuple[float, str]:
        """Seconds of refill until ``cost`` fits every budget (1 ms at least), and the budget that takes longest."""
        seconds, name = max(((bucket.time_to_fit(cost.of(name)), name) for name, bucket in self._buckets.items()),
                            default=(0.0, "requests"))
        return max(1e-3, seconds), name
