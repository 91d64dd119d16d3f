"""What a run reports: :class:`Progress` while it goes, :class:`RunSummary` at the end, and the
tally of written records both are computed from."""

from __future__ import annotations

from collections import Counter

import msgspec

from open_strawberry.messages import TraceRecord

__all__ = ["Progress", "RunSummary", "Tally"]


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """What a progress display shows, sampled while the run goes on."""

    total: int  # traces this run will make (resumed ones left out)
    resumed: int
    done: int
    correct: int
    graded: int
    failed: int
    in_flight: int
    turns: int
    elapsed_s: float
    input_tokens: int
    output_tokens: int
    calls_in_flight: int
    rate_limited: int
    retries: int

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s else 0.0


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    out: str
    manifest: str
    planned: int
    resumed: int
    written: int
    statuses: dict[str, int]
    correct: int
    graded: int
    pass_rate: float | None
    mean_turns: float | None
    input_tokens: int
    output_tokens: int
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    turn_p50_s: float | None
    turn_p99_s: float | None
    elapsed_s: float
    interrupted: bool
    actor_queue_ms: dict[str, dict[str, float]] = {}  # {actor: wait in its inbox: mean, p50, p99 (ms), handled}


class Tally:
    """Running totals of the records the sink wrote (an observer of the sink)."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.correct = self.graded = self.turns = self.input_tokens = self.output_tokens = 0
        self.ttfts: list[float] = []
        self.turn_times: list[float] = []

    def __call__(self, record: TraceRecord) -> None:
        self.statuses[record.status] += 1
        if record.correct is not None:
            self.graded += 1
            self.correct += record.correct
        self.turns += len(record.turns)
        self.input_tokens += record.usage.input_tokens
        self.output_tokens += record.usage.output_tokens
        if len(self.ttfts) < 100_000:  # enough for percentiles; memory stays flat
            for turn in record.turns:
                if turn.timings.ttft_s is not None:
                    self.ttfts.append(turn.timings.ttft_s)
                self.turn_times.append(turn.timings.e2e_s)

