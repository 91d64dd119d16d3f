"""The timings every backend measures the same way."""

from __future__ import annotations

import time

import msgspec

from open_strawberry.messages import Timings

__all__ = ["Stopwatch"]


class Stopwatch:
    """Started when a request is sent: time to the first chunk, the gaps between chunks, and
    (when read) the time to the end. Chunks of thinking (:meth:`thinking`) and of the answer
    (:meth:`chunk`) are also timed apart: see :class:`~open_strawberry.messages.Timings`."""

    __slots__ = ("_last", "first_answer", "first_thinking", "gaps", "sent", "ttft")

    def __init__(self) -> None:
        self.sent = time.perf_counter()
        self.ttft: float | None = None
        self.first_answer: float | None = None
        self.first_thinking: float | None = None
        self.gaps: list[float] = []
        self._last = 0.0

    def chunk(self) -> None:
        """Note that a chunk of the answer arrived now."""
        now = self._note()
        if self.first_answer is None:
            self.first_answer = now - self.sent

    def thinking(self) -> None:
        """Note that a chunk of thinking arrived now."""
        now = self._note()
        if self.first_thinking is None:
            self.first_thinking = now - self.sent

    def _note(self) -> float:
        now = time.perf_counter()
        if self.ttft is None:
            self.ttft = now - self.sent
        else:
            self.gaps.append(now - self._last)
        self._last = now
        return now

    def timings(self, *, thought: bool = False) -> Timings:
        """The timings so far; ``thought``: the reply had thinking (even if none was streamed,
        as with a non-streamed reply), so the two first-token times are filled in."""
        timings = Timings(ttft_s=self.ttft, chunk_gaps_s=tuple(self.gaps), e2e_s=time.perf_counter() - self.sent)
        if thought or self.first_thinking is not None:
            timings = msgspec.structs.replace(timings, first_thinking_s=self.first_thinking or self.ttft,
                                              first_answer_s=self.first_answer)
        return timings
