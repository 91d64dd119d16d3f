"""The Grader: compares a trace's final answer with the ground truth and writes the record."""

from __future__ import annotations

import anyio

from open_strawberry.grading import Grader, resolve_grader
from open_strawberry.messages import TraceRecord, Verdict
from open_strawberry.runtime.actor import Actor

__all__ = ["GraderActor"]


class GraderActor(Actor):
    """Grades with the problem's own ``grader`` if it names one, else ``default``.

    A trace that ended without a final answer is neither right nor wrong (``correct`` null).
    A grader that raises fails that trace alone (the runtime records the error).
    """

    inputs = (Verdict,)
    outputs = (TraceRecord,)

    def __init__(self, default: str = "auto") -> None:
        self.default = default
        self._graders: dict[str, Grader] = {default: resolve_grader(default)}  # fails at start-up, not later

    def _grader(self, name: str) -> Grader:
        if name not in self._graders:
            self._graders[name] = resolve_grader(name)
        return self._graders[name]

    async def teardown(self) -> None:
        for grader in self._graders.values():
            close = getattr(grader, "aclose", None)
            if close is not None:
                await close()

    async def handle(self, message: Verdict) -> TraceRecord:
        state = message.state
        if message.final_answer is None:
            return TraceRecord.from_state(state, status=message.status, stop_reason=message.reason)
        grader = self._grader(state.problem.grader or self.default)
        # in a worker thread: a grader may take a while (math, your own) and the loop must not wait
        result = await anyio.to_thread.run_sync(grader.grade, message.final_answer, state.problem.answer,
                                                state.problem)
        return TraceRecord.from_state(state, status=message.status, final_answer=message.final_answer,
                                      correct=result.correct, stop_reason=message.reason, grader=result.grader,
                                      grade_detail=result.detail)
