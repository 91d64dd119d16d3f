"""Counters the runtime keeps per actor, the frozen records ``statistics()`` returns, and
:func:`percentile`, the one definition of a percentile behind every figure the package
reports (inbox waits, run summaries, benchmark metrics)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import msgspec

__all__ = ["ActorStatistics", "SystemStatistics", "WaitStatistics", "percentile"]

_RECENT_WAITS = 4096  # how many recent queue waits each actor keeps for percentiles


class WaitStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Enqueue-to-dequeue waits of an actor's inbox, in seconds.

    ``count``, ``mean_s`` and ``max_s`` cover every message; the percentiles cover the
    most recent 4096.
    """

    count: int = 0
    mean_s: float = 0.0
    max_s: float = 0.0
    p50_s: float = 0.0
    p99_s: float = 0.0


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one actor: its inbox and what its workers did."""

    name: str
    workers: int
    buffer_size: int
    inbox_depth: int  # messages sent to the actor and not yet received (blocked senders too)
    peak_depth: int
    in_flight: int  # messages its workers hold right now
    handled: int
    failed: int
    restarts: int
    queue_wait: WaitStatistics


class SystemStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the whole system."""

    max_traces: int
    admitted: int
    finished: int
    in_flight: int
    peak_in_flight: int
    failed: int  # failed records produced by any actor
    interrupts: int
    actors: tuple[ActorStatistics, ...]
    withdrawn: int = 0  # traces that left unwritten: their call was withdrawn before it was sent

    def actor(self, name: str) -> ActorStatistics:
        for stats in self.actors:
            if stats.name == name:
                return stats
        raise KeyError(name)


class ActorCounters:
    """The mutable counters behind :class:`ActorStatistics` (updated on the hot path)."""

    __slots__ = ("depth", "failed", "handled", "in_flight", "peak_depth", "restarts",
                 "wait_count", "wait_max", "wait_total", "waits")

    def __init__(self) -> None:
        self.depth = 0
        self.peak_depth = 0
        self.in_flight = 0
        self.handled = 0
        self.failed = 0
        self.restarts = 0
        self.wait_count = 0
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.waits: deque[float] = deque(maxlen=_RECENT_WAITS)

    def enqueued(self) -> None:
        self.depth += 1
        if self.depth > self.peak_depth:
            self.peak_depth = self.depth

    def dequeued(self, wait: float) -> None:
        self.depth -= 1
        self.wait_count += 1
        self.wait_total += wait
        if wait > self.wait_max:
            self.wait_max = wait
        self.waits.append(wait)

    def snapshot(self, name: str, workers: int, buffer_size: int) -> ActorStatistics:
        waits = WaitStatistics(
            count=self.wait_count,
            mean_s=self.wait_total / self.wait_count if self.wait_count else 0.0,
            max_s=self.wait_max,
            p50_s=percentile(self.waits, 50) or 0.0,
            p99_s=percentile(self.waits, 99) or 0.0,
        )
        return ActorStatistics(
            name=name,
            workers=workers,
            buffer_size=buffer_size,
            inbox_depth=self.depth,
            peak_depth=self.peak_depth,
            in_flight=self.in_flight,
            handled=self.handled,
            failed=self.failed,
            restarts=self.restarts,
            queue_wait=waits,
        )


def percentile(values: Iterable[float], pct: float) -> float | None:
    """The ``pct``-th percentile (0 to 100) of ``values``; None when there are none.

    Linear interpolation between the closest ranks: with the ``n`` values sorted, the
    percentile lies at position ``(n - 1) * pct / 100`` (0-based), between the values on
    either side in proportion. This is numpy's default (``method="linear"``, Hyndman and
    Fan's type 7) and what ``statistics.quantiles(values, n=100, method="inclusive")`` gives
    for whole percentiles; the minimum and maximum are the 0th and 100th.
    """
    if not 0 <= pct <= 100:
        raise ValueError(f"a percentile lies between 0 and 100, not {pct}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
