"""The cheap built-in graders (``numeric``, ``exact``, ``auto``, ``choice``, ``regex``), and
:class:`CallableGrader`, which adapts a user's function.

A custom grader is a callable ``(answer, truth, problem) -> bool | GradeResult``, plain or
``async``; a plain one runs in a worker thread so a slow one never holds up the event loop.
Every grade says which grader decided and the normalised forms it compared.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable

import anyio.to_thread

from open_strawberry.grading.answers import last_number, normalize_answer, parse_number, plain_text, show_number
from open_strawberry.grading.base import GradeResult
from open_strawberry.messages import Problem

__all__ = ["AutoGrader", "CallableGrader", "ChoiceGrader", "ExactGrader", "NumericGrader", "RegexGrader"]


class NumericGrader:
    """Right when the numbers are equal within ``rel_tol`` (relative) or ``abs_tol``.

    If the answer is not a bare number, its last number counts ("The answer is 42.").
    """

    name = "numeric"

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> None:
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        expected = parse_number(truth)
        if expected is None:
            return GradeResult(correct=False, grader=self.name, detail=f"ground truth {truth!r} is not a number")
        got = parse_number(answer)
        if got is None:
            got = last_number(answer)
        if got is None:
            return GradeResult(correct=False, grader=self.name, detail=f"no number in {answer!r}")
        difference = abs(float(got - expected))
        correct = difference <= max(self.abs_tol, self.rel_tol * abs(float(expected)))
        return GradeResult(correct=correct, grader=self.name, detail=f"{show_number(got)} vs {show_number(expected)}")


class ExactGrader:
    """Right when the answers match after normalisation (case, spaces, wrappers)."""

    name = "exact"

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        got, expected = plain_text(answer), plain_text(truth)
        return GradeResult(correct=got == expected, grader=self.name, detail=f"{got!r} vs {expected!r}")


class AutoGrader:
    """``numeric`` when the ground truth is a number, else ``exact``."""

    name = "auto"

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        if parse_number(truth) is not None:
            return await _NUMERIC.grade(answer, truth, problem)
        return await _EXACT.grade(answer, truth, problem)


class CallableGrader:
    """Adapts a user function ``(answer, truth, problem) -> bool | GradeResult``."""

    def __init__(self, name: str,
                 function: Callable[[str, str, Problem], bool | GradeResult | Awaitable[bool | GradeResult]]) -> None:
        self.name = name
        self.function = function

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(answer, truth, problem)
        else:
            result = await anyio.to_thread.run_sync(self.function, answer, truth, problem)
            if inspect.isawaitable(result):
                result = await result
        if isinstance(result, GradeResult):
            return result
        return GradeResult(correct=bool(result), grader=self.name, detail=f"{answer!r} vs {truth!r}")


class ChoiceGrader:
    """Multiple choice: the option letter of the answer ("B", "(b)", "B.", "The answer is B")."""

    name = "choice"
    _LETTER = re.compile(r"(?:^|[\s(\[])([A-J])(?:$|[\s).\]:,])")

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        expected = normalize_answer(truth).strip("()[]. ").upper()
        letters = self._LETTER.findall(normalize_answer(answer).upper())
        got = letters[-1] if letters else None
        return GradeResult(correct=got == expected, grader=self.name, detail=f"{got!r} vs {expected!r}")


class RegexGrader:
    """The ground truth is a regular expression the whole normalised answer must match."""

    name = "regex"

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        got = normalize_answer(answer)
        try:
            correct = re.fullmatch(truth, got, re.IGNORECASE | re.DOTALL) is not None
        except re.error as exc:
            return GradeResult(correct=False, grader=self.name, detail=f"bad pattern {truth!r}: {exc}")
        return GradeResult(correct=correct, grader=self.name, detail=f"{got!r} against /{truth}/")


_NUMERIC = NumericGrader()
_EXACT = ExactGrader()
