"""The timings every backend measures the same way."""

from __future__ import annotations

import time

from open_strawberry.messages import Timings

__all__ = ["Stopwatch"]


class Stopwatch:
    """Started when a request is sent: time to the first content chunk, the gaps between
    content chunks, and (when read) the time to the end."""

    __slots__ = ("_last", "gaps", "sent", "ttft")

    def __init__(self) -> None:
        self.sent = time.perf_counter()
        self.ttft: float | None = None
        self.gaps: list[float] = []
        self._last = 0.0

    def chunk(self) -> None:
        """Note that a content chunk arrived now."""
        now = time.perf_counter()
        if self.ttft is None:
            self.ttft = now - self.sent
        else:
            self.gaps.append(now - self._last)
        self._last = now

    def timings(self) -> Timings:
        return Timings(ttft_s=self.ttft, chunk_gaps_s=tuple(self.gaps), e2e_s=time.perf_counter() - self.sent)
