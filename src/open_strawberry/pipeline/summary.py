"""What a run reports: :class:`Progress` while it goes, :class:`RunSummary` at the end, and the
tally of written records both are computed from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from open_strawberry.messages import TraceRecord
from open_strawberry.runtime.statistics import percentile

__all__ = ["RUN_FATAL_ERRORS", "Progress", "RunSummary", "Tally"]


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
    empty_turns: int = 0  # replies the server finished with no text: a run of them means something is wrong
    stopped: str | None = None  # why admission stopped early (an error no trace can get past)
    # --batch runs: batches by state (open, ended, failed), requests by state (waiting, processing,
    # succeeded, errored, expired, canceled), the round (batches sent as rounds), seconds with a batch open
    batches: dict[str, int] = {}
    batch_requests: dict[str, int] = {}
    batch_round: int = 0
    batch_waiting_s: float = 0.0

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
    empty_turns: int = 0
    failed: int = 0
    stopped: str | None = None  # why the run stopped admitting traces early, if it did
    server_capacity: str | None = None  # what the model server said it can take (local servers)
    peak_calls_in_flight: int = 0
    actor_queue_ms: dict[str, dict[str, float]] = {}  # {actor: wait in its inbox: mean, p50, p99 (ms), handled}


# errors that every other trace would meet too: the run stops admitting when one is recorded
RUN_FATAL_ERRORS = frozenset({"AuthenticationError", "ModelNotFoundError", "BackendClosedError"})
# an error that may be one trace's fault, unless it is all the run has produced so far
SYSTEMATIC_AFTER = 8  # records, all failed with the same BadRequestError


class Tally:
    """Running totals of the records the sink wrote (an observer of the sink), and the watch for
    errors no trace can get past: ``on_fatal`` is called once, with the reason, when one shows."""

    def __init__(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self.statuses: Counter[str] = Counter()
        self.correct = self.graded = self.turns = self.input_tokens = self.output_tokens = 0
        self.empty_turns = 0
        self.ttfts: list[float] = []
        self.turn_times: list[float] = []
        self.stopped: str | None = None
        self.on_fatal = on_fatal
        self._bad_requests = 0

    def _watch(self, record: TraceRecord) -> None:
        error = record.error
        if record.status != "error" or error is None:
            self._bad_requests = -1  # something succeeded: bad requests are the traces' own
            return
        reason = None
        if error.type in RUN_FATAL_ERRORS:
            reason = f"{error.type}: {error.message}"
        elif error.type == "BadRequestError" and self._bad_requests >= 0:
            self._bad_requests += 1
            if self._bad_requests >= SYSTEMATIC_AFTER:
                reason = f"every trace so far was refused ({error.type}: {error.message})"
        if reason is not None and self.stopped is None:
            self.stopped = reason
            if self.on_fatal is not None:
                self.on_fatal(reason)

    def __call__(self, record: TraceRecord) -> None:
        self._watch(record)
        self.statuses[record.status] += 1
        self.empty_turns += sum(1 for m in record.messages if m.role == "assistant" and not m.content.strip())
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

    def summary(self, *, written: int, **rest: Any) -> RunSummary:
        """The run's summary: the figures of this tally over ``written`` records, and ``rest``
        (where the run wrote, what it planned, how long it took: what only the run knows)."""
        return RunSummary(
            written=written, statuses=dict(self.statuses), correct=self.correct, graded=self.graded,
            pass_rate=self.correct / self.graded if self.graded else None,
            mean_turns=self.turns / written if written else None,
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            ttft_p50_s=percentile(self.ttfts, 50), ttft_p90_s=percentile(self.ttfts, 90),
            ttft_p99_s=percentile(self.ttfts, 99), turn_p50_s=percentile(self.turn_times, 50),
            turn_p99_s=percentile(self.turn_times, 99), empty_turns=self.empty_turns,
            failed=self.statuses["error"], **rest)
