"""What a run reports: :class:`Progress` while it goes, :class:`RunSummary` at the end, and the
tally of written records both are computed from (:class:`~open_strawberry.traces.tally.Tally`,
the package's one tally of records, re-exported here)."""

from __future__ import annotations

import msgspec

from open_strawberry.traces.tally import RUN_FATAL_ERRORS, RunSummary, Tally

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
    # a long wait of the model's limiter going on now, in words ("58 s for the tokens budget of MODEL")
    waiting: str | None = None

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s else 0.0

