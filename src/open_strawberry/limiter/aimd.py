"""Adaptive concurrency for servers whose limits are unknown (vLLM, llama.cpp, ollama).

Additive increase, multiplicative decrease, after a slow start: until the first cut, each
success raises the limit by one (it doubles every round of calls, to find the server's
capacity fast); after it, each success below the latency threshold raises the concurrency
limit by ``1 / limit`` (about one per round of calls); an overload signal
(429, 503, a timeout) cuts it by ``decrease``, at most once per ``decrease_interval_s``; and a
latency above ``latency_tolerance`` times the best recent latency cuts it gently. The limit
stays between ``floor`` and ``ceiling``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["AIMD", "AIMDConfig"]


@dataclass(frozen=True)
class AIMDConfig:
    initial: int = 8
    floor: int = 1
    ceiling: int = 256
    decrease: float = 0.5
    latency_tolerance: float = 2.0
    latency_decrease: float = 0.9
    decrease_interval_s: float = 1.0
    latency_window: int = 200
    slow_start: bool = True


class AIMD:
    def __init__(self, config: AIMDConfig) -> None:
        self.config = config
        self.limit = float(config.initial)
        self._recent: deque[float] = deque(maxlen=config.latency_window)
        self._last_decrease = float("-inf")
        self._slow_start = config.slow_start

    @property
    def current(self) -> int:
        return max(self.config.floor, int(self.limit))

    def on_success(self, latency_s: float | None, now: float) -> None:
        if latency_s is not None:
            best = min(self._recent) if self._recent else latency_s
            self._recent.append(latency_s)
            if latency_s > best * self.config.latency_tolerance and len(self._recent) >= 10:
                self._decrease(self.config.latency_decrease, now)
                return
        step = 1.0 if self._slow_start else 1.0 / max(self.limit, 1.0)
        self.limit = min(float(self.config.ceiling), self.limit + step)

    def on_overload(self, now: float) -> None:
        self._decrease(self.config.decrease, now)

    def _decrease(self, factor: float, now: float) -> None:
        if now - self._last_decrease >= self.config.decrease_interval_s:
            self.limit = max(float(self.config.floor), self.limit * factor)
            self._last_decrease = now
            self._slow_start = False
