"""How a crashed actor loop is restarted: :class:`RestartPolicy` (the supervision of
:class:`~open_strawberry.runtime.system.ActorSystem`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RestartPolicy"]


@dataclass(frozen=True)
class RestartPolicy:
    """How often a crashed actor loop is restarted, and how long to wait before each try.

    The wait before restart ``n`` (1-based) is ``initial_backoff_s * 2 ** (n - 1)``,
    capped at ``max_backoff_s``. After ``max_restarts`` restarts the next crash stops the
    system.
    """

    max_restarts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0

    def backoff(self, restart: int) -> float:
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2 ** (restart - 1)))
