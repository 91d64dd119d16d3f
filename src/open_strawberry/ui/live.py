"""What the monitor keeps of a run as it goes: the traces in flight with their text and, apart,
their thinking (:class:`LiveTrace`, :class:`LiveTurn`), and the figures over time (:class:`Series`).

The text of a turn that streams is kept as it may be shown: with every registered key masked, and
without a tail that could be the start of one (:class:`~open_strawberry.redact.StreamMasker`)."""

from __future__ import annotations

from open_strawberry.events import TraceFinished
from open_strawberry.messages import Usage
from open_strawberry.redact import StreamMasker
from open_strawberry.ui.contract import TraceRow, TraceView, TurnView, UsageView

__all__ = ["LiveTrace", "LiveTurn", "Series"]


class LiveTurn:
    __slots__ = ("attempts", "e2e_s", "kind", "masks", "parts", "thinking", "ttft_s", "turn", "usage")

    def __init__(self, turn: int, kind: str) -> None:
        self.turn = turn
        self.kind = kind
        self.parts: list[str] | None = []  # None: dropped to keep the trace under trace_chars
        self.thinking: list[str] = []  # dropped with parts
        self.usage: Usage | None = None
        self.ttft_s: float | None = None
        self.e2e_s: float | None = None
        self.attempts = 1
        self.masks = (StreamMasker(), StreamMasker())  # the answer's, the thinking's

    def describe(self) -> TurnView:
        usage = self.usage
        return TurnView(turn=self.turn, kind=self.kind, text="".join(self.parts) if self.parts is not None else None,
                        done=usage is not None, attempts=self.attempts, ttft_s=self.ttft_s, e2e_s=self.e2e_s,
                        usage=None if usage is None else UsageView.of(usage),
                        reasoning="".join(self.thinking) or None)

    def chars(self) -> int:
        return sum(map(len, self.parts or ())) + sum(map(len, self.thinking))


class LiveTrace:
    """One trace's turns and their text, kept under ``limit`` characters (the oldest turns'
    text goes first; the turn streaming now is kept whole)."""

    __slots__ = ("chars", "finished", "limit", "started", "trace_id", "turns")

    def __init__(self, trace_id: str, now: float, limit: int) -> None:
        self.trace_id = trace_id
        self.started = now
        self.limit = limit
        self.turns: list[LiveTurn] = []
        self.chars = 0
        self.finished: TraceFinished | None = None

    def start(self, turn: int, kind: str) -> None:
        if self.turns and self.turns[-1].turn == turn:  # a retried turn starts again, held tails and all
            self.turns[-1].attempts += 1
            self.turns[-1].masks = (StreamMasker(), StreamMasker())
        else:
            self.turns.append(LiveTurn(turn, kind))

    def add_text(self, text: str, *, thinking: bool = False) -> str:
        """A streamed piece of the newest turn: of its answer, or of its ``thinking``. Returns
        what may be shown of it now (keys masked, the start of one held back: see the module)."""
        if not self.turns:
            return ""
        turn = self.turns[-1]
        shown = turn.masks[thinking].feed(text)
        if turn.parts is not None and shown:
            (turn.thinking if thinking else turn.parts).append(shown)
            self.chars += len(shown)
            self._trim()
        return shown

    def end_turn(self, usage: Usage, ttft_s: float | None, e2e_s: float, attempts: int,
                 text: str | None, reasoning: str | None = None) -> LiveTurn | None:
        """The newest turn ended (``text``, ``reasoning``: the reply and its thinking as
        recorded, None: not told); that turn."""
        if not self.turns:
            return None
        turn = self.turns[-1]
        turn.usage, turn.ttft_s, turn.e2e_s, turn.attempts = usage, ttft_s, e2e_s, attempts
        if turn.parts is not None and text is not None:  # not what a failed attempt streamed first
            self.chars -= turn.chars()
            turn.parts, turn.thinking = [text], [reasoning] if reasoning else []
            self.chars += turn.chars()
            self._trim()
        return turn

    def _trim(self) -> None:
        for turn in self.turns[:-1]:
            if self.chars <= self.limit:
                return
            if turn.parts is not None:
                self.chars -= turn.chars()
                turn.parts, turn.thinking = None, []

    def row(self, now: float) -> TraceRow:
        current = self.turns[-1] if self.turns else None
        return TraceRow(trace_id=self.trace_id, turn=current.turn if current else 0,
                        kind=current.kind if current else "", streaming=bool(current and current.usage is None),
                        age_s=round(now - self.started, 1),
                        output_tokens=sum(t.usage.output_tokens for t in self.turns if t.usage is not None))

    def describe(self) -> TraceView:
        return TraceView(trace_id=self.trace_id, turns=[turn.describe() for turn in self.turns],
                         finished=self.finished)


class Series:
    """Points over time, at most ``limit`` of them, each of the same width: when the series is
    full, neighbours are merged pairwise (rates averaged) and each new point takes in twice as
    many ticks as before, so a long run keeps its whole history at a coarser grain."""

    FIELDS = ("t", "turns_per_s", "output_tokens_per_s", "input_tokens_per_s", "done")
    _LAST = ("t", "done")  # a merged point keeps the later of these, and the mean of the rest

    def __init__(self, limit: int) -> None:
        self.limit = max(4, limit - limit % 2)
        self.columns: dict[str, list[float]] = {name: [] for name in self.FIELDS}
        self.stride = 1  # ticks per point
        self._pending: list[dict[str, float]] = []

    def add(self, **point: float) -> None:
        self._pending.append(point)
        if len(self._pending) < self.stride:
            return
        for name in self.FIELDS:
            values = [p[name] for p in self._pending]
            self.columns[name].append(values[-1] if name in self._LAST else sum(values) / len(values))
        self._pending.clear()
        if len(self.columns["t"]) >= self.limit:
            for name, values in self.columns.items():
                self.columns[name] = [values[i + 1] if name in self._LAST else (values[i] + values[i + 1]) / 2
                                      for i in range(0, len(values) - 1, 2)]
            self.stride *= 2
