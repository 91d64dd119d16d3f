"""Token buckets for request and token budgets per minute."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """A budget of ``capacity`` units per minute, refilled continuously, starting full.

    ``take`` may drive the level below zero: a call that cost more than reserved leaves a
    debt the refill pays off before anything else fits. A cost larger than the capacity
    fits once the bucket is full (it could never fit otherwise).
    """

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: float, *, now: float, per_s: float | None = None) -> None:
        self.capacity = float(capacity)
        self.rate = per_s if per_s is not None else self.capacity / 60.0
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def fits(self, cost: float) -> bool:
        return self.level >= min(cost, self.capacity)

    def take(self, cost: float) -> None:
        self.level -= cost

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)

    def time_to_fit(self, cost: float) -> float:
        """Seconds of refill until ``cost`` fits (as of the last refill)."""
        missing = min(cost, self.capacity) - self.level
        return max(0.0, missing / self.rate) if self.rate > 0 else (0.0 if missing <= 0 else float("inf"))

    def correct(self, remaining: float) -> None:
        """Never believe we have more than the server says is left."""
        self.level = min(self.level, remaining)

    def resize(self, capacity: float) -> None:
        self.level = min(self.level, capacity) if self.capacity else capacity
        self.capacity = float(capacity)
        self.rate = self.capacity / 60.0

    def __repr__(self) -> str:
        return f"TokenBucket(level={self.level:.1f}/{self.capacity:.0f}, rate={self.rate:.2f}/s)"
