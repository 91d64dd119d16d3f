"""What a grader is: the :class:`Grader` protocol and the :class:`GradeResult` it returns."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from open_strawberry.messages import Problem

__all__ = ["GradeResult", "Grader"]


class GradeResult(msgspec.Struct, frozen=True, kw_only=True):
    correct: bool
    grader: str
    detail: str = ""


@runtime_checkable
class Grader(Protocol):
    """Decides whether ``answer`` matches ``truth`` for ``problem``.

    ``grade`` is a coroutine run on the event loop: a grader that blocks (a symbolic comparison,
    a user's function) hands its work to a worker thread itself, as :class:`CallableGrader` and
    :class:`MathGrader` do. A grader that holds resources (a connection pool, a worker process)
    has an ``aclose`` coroutine, called by whoever created it.
    """

    @property
    def name(self) -> str: ...

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult: ...
