"""Snapshots of a :class:`~open_strawberry.limiter.Limiter`, from its ``statistics()``."""

from __future__ import annotations

import msgspec

__all__ = ["BudgetStatistics", "LimiterStatistics", "wait_reason"]


class BudgetStatistics(msgspec.Struct, frozen=True, kw_only=True):
    level: float
    capacity: float


class LimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one backend's limiter."""

    in_flight: int
    peak_in_flight: int  # the most calls in flight at once so far
    concurrency_limit: int | None
    waiting: int
    admitted: int
    succeeded: int
    failed_attempts: int
    retries: int  # admitted attempts that were not their call's first
    rate_limited: int  # RateLimitedError: 429, or a rate-limit error event mid-stream
    overloaded: int  # OverloadedError: 529 or 503, or an overloaded error event mid-stream
    cooldowns: int
    cooldown_remaining_s: float
    wait_total_s: float
    budgets: dict[str, BudgetStatistics]
    # a long wait going on now (one longer than LONG_WAIT_S when it began): what for ("cooldown",
    # or the budget's name: "requests", "tokens", "input_tokens", "output_tokens"), and how long yet
    long_wait_for: str | None = None
    long_wait_left_s: float = 0.0
    withdrawn: int = 0  # calls that were waiting when the limiter withdrew its waits: never sent


_IN_WORDS = {"cooldown": "the cooldown", "place": "a free place", "requests": "the request budget",
             "tokens": "the token budget", "input_tokens": "the input-token budget",
             "output_tokens": "the output-token budget"}


def wait_reason(reason: str) -> str:
    """What a call waits for (``long_wait_for``: ``cooldown``, or a budget's name), in words:
    ``the cooldown``, ``the token budget``..."""
    return _IN_WORDS.get(reason, f"the {reason} budget")
