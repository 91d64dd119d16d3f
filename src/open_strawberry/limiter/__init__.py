"""Flow control per backend: budgets, cooldowns, adaptive concurrency, and retries."""

from open_strawberry.limiter.aimd import AIMD, AIMDConfig
from open_strawberry.limiter.backend import LimitedBackend, RetryPolicy, create_limited_backend
from open_strawberry.limiter.buckets import TokenBucket
from open_strawberry.limiter.clock import Clock, ManualClock, SystemClock
from open_strawberry.limiter.core import Cost, Limiter, LimiterConfig, LimiterStatistics, Reservation

__all__ = [
    "AIMD",
    "AIMDConfig",
    "Clock",
    "Cost",
    "LimitedBackend",
    "Limiter",
    "LimiterConfig",
    "LimiterStatistics",
    "ManualClock",
    "Reservation",
    "RetryPolicy",
    "SystemClock",
    "TokenBucket",
    "create_limited_backend",
]
