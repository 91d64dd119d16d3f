"""The run's one shared place: the :class:`Coordinator`, which the driver runs as a small Ray
actor (no CPU reserved), holding the :class:`~open_strawberry.distributed.budget.BudgetPool`
when the run has rate budgets, and each shard's latest :class:`~open_strawberry.pipeline.Progress`;
and :func:`combine_progress`, the driver's sum of those into the one display a local run shows
(and :func:`combine_queue_waits`, of the shards' summaries into the run's).

The class itself is plain Python (no Ray import): a Ray actor runs one call at a time, so it
needs no lock, and the tests use it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from open_strawberry.distributed.budget import BudgetPool
from open_strawberry.pipeline.summary import Progress, RunSummary

__all__ = ["Coordinator", "combine_progress", "combine_queue_waits"]


class Coordinator:
    """Budget leases and progress reports for one run; see the module docstring."""

    def __init__(self, budgets: Mapping[str, float]) -> None:
        self.pool = BudgetPool(budgets) if budgets else None
        self._progress: dict[int, Progress] = {}  # {shard: its latest snapshot}

    def lease(self, wanted: dict[str, float], holder: str = "") -> dict[str, float]:
        return self.pool.lease(wanted, holder) if self.pool is not None else {}

    def give_back(self, amounts: dict[str, float]) -> None:
        if self.pool is not None:
            self.pool.give_back(amounts)

    def report(self, shard: int, progress: Progress) -> None:
        """A shard's latest snapshot (a retried shard's new attempt replaces the dead one's)."""
        self._progress[shard] = progress

    def progress(self) -> dict[int, Progress]:
        return dict(self._progress)

    def budgets(self) -> dict[str, dict[str, float]]:
        """The pool's figures per budget (level, capacity, granted, returned); empty without budgets."""
        return self.pool.statistics() if self.pool is not None else {}


_SUMMED = ("correct", "graded", "failed", "in_flight", "turns", "input_tokens", "output_tokens", "calls_in_flight",
           "rate_limited", "retries", "empty_turns")


def combine_progress(shards: Mapping[int, Progress], *, total: int, resumed: int, elapsed_s: float) -> Progress:
    """One snapshot for the whole run: ``total`` pairs to make and ``resumed`` already in the
    traces file (the driver's figures), the rest summed over the shards' latest snapshots. A
    shard's pairs made by an attempt that died count as done (they are in its file)."""
    sums = {name: sum(getattr(p, name) for p in shards.values()) for name in _SUMMED}
    stopped = next((p.stopped for p in shards.values() if p.stopped), None)
    done = sum(p.done + p.resumed for p in shards.values())
    return msgspec.structs.replace(Progress(total=total, resumed=resumed, done=done, elapsed_s=elapsed_s, **sums),
                                   stopped=stopped)


def combine_queue_waits(summaries: Sequence[RunSummary]) -> dict[str, dict[str, float]]:
    """Per actor over the shards: handled summed, mean and p50 weighted by handled, p99 the worst."""
    combined: dict[str, dict[str, float]] = {}
    for summary in summaries:
        for actor, figures in summary.actor_queue_ms.items():
            into = combined.setdefault(actor, {"mean": 0.0, "p50": 0.0, "p99": 0.0, "handled": 0.0})
            handled = figures.get("handled", 0.0)
            total = into["handled"] + handled
            if total:
                for key in ("mean", "p50"):
                    into[key] = (into[key] * into["handled"] + figures.get(key, 0.0) * handled) / total
            into["p99"] = max(into["p99"], figures.get("p99", 0.0))
            into["handled"] = total
    return combined
