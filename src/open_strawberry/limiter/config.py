"""What a :class:`~open_strawberry.limiter.Limiter` is told: its limits, and each call's cost."""

from __future__ import annotations

from dataclasses import dataclass

from open_strawberry.limiter.aimd import AIMDConfig

__all__ = ["BUDGETS", "Cost", "LimiterConfig"]

BUDGETS = ("requests", "tokens", "input_tokens", "output_tokens")  # the budgets a limiter may hold, by name


@dataclass(frozen=True)
class LimiterConfig:
    """The limits of one backend. ``None`` means unknown (learned from headers if sent)."""

    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    adaptive: AIMDConfig | None = None
    fairness_s: float = 2.0
    learn_from_headers: bool = True
    default_cooldown_s: float = 1.0
    max_cooldown_s: float = 120.0


@dataclass(frozen=True)
class Cost:
    """What a call is expected to use: one request, and input and output tokens."""

    input_tokens: int = 0
    output_tokens: int = 0

    def of(self, budget: str) -> float:
        if budget == "requests":
            return 1.0
        if budget == "input_tokens":
            return float(self.input_tokens)
        if budget == "output_tokens":
            return float(self.output_tokens)
        return float(self.input_tokens + self.output_tokens)
