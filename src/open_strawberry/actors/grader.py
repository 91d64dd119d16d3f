"""The Grader: compares a trace's final answer with the ground truth and writes the record."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Literal

import anyio

from open_strawberry.grading import Grader, check_grader_name, last_number, open_grader, parse_number
from open_strawberry.messages import TraceRecord, Verdict
from open_strawberry.runtime.actor import Actor

__all__ = ["GraderActor"]


class GraderActor(Actor):
    """Grades with the problem's own ``grader`` if it names one, else ``default``.

    ``default`` is a grader (yours to close: the actor never closes what it was given) or a
    name, which the actor opens in :meth:`setup` and closes in :meth:`teardown`. A problem may
    only name a built-in grader (checked when the problems are read, and again here); the
    actor opens each one it meets once and closes it at the end.

    A trace that ended without a final answer is neither right nor wrong (``correct`` null),
    unless ``fallback="last_number"``: then, when the ground truth is a number, the last number
    of the last reply is graded as the answer, and the grade's detail says it was a fallback.
    A grader that raises fails that trace alone (the runtime records the error).
    """

    inputs = (Verdict,)
    outputs = (TraceRecord,)

    def __init__(self, default: Grader | str = "auto", *, fallback: Literal["none", "last_number"] = "none") -> None:
        if isinstance(default, str):
            check_grader_name(default, trusted=True)  # a bad name fails when the graph is built
        self.default = default
        self.fallback = fallback
        self._graders: dict[str, Grader] = {}
        self._stack = AsyncExitStack()
        self._opening = anyio.Lock()  # workers of a pool open each grader once

    async def setup(self) -> None:
        if isinstance(self.default, str):
            self.default = await self._stack.enter_async_context(open_grader(self.default))

    async def teardown(self) -> None:
        await self._stack.aclose()
        self._graders.clear()

    async def _grader(self, name: str | None) -> Grader:
        assert not isinstance(self.default, str), "setup() opens the default grader"
        if name is None:
            return self.default
        async with self._opening:
            if name not in self._graders:
                check_grader_name(name, trusted=False)
                self._graders[name] = await self._stack.enter_async_context(open_grader(name))
        return self._graders[name]

    async def handle(self, message: Verdict) -> TraceRecord:
        state = message.state
        answer, how = message.final_answer, ""
        if answer is None and self.fallback == "last_number" and parse_number(state.problem.answer) is not None:
            reply = next((m.content for m in reversed(state.messages) if m.role == "assistant"), "")
            if (number := last_number(reply)) is not None:
                answer = str(number.numerator) if number.denominator == 1 else str(number)
                how = "fallback (no final answer; the last number of the last reply): "
        if answer is None:
            return TraceRecord.from_state(state, status=message.status, stop_reason=message.reason)
        grader = await self._grader(state.problem.grader)
        result = await grader.grade(answer, state.problem.answer, state.problem)
        return TraceRecord.from_state(state, status=message.status, final_answer=answer,
                                      correct=result.correct, stop_reason=message.reason, grader=result.grader,
                                      grade_detail=how + result.detail)
