"""Graders: is a final answer right? Built in: ``numeric``, ``exact``, ``auto`` (numeric when the
ground truth is a number, else exact), ``choice`` (option letters), ``regex`` (the truth is a
pattern), ``math`` (symbolic equivalence, see :mod:`open_strawberry.math_grader`), and any
``module:function`` of your own.

A custom grader is a callable ``(answer, truth, problem) -> bool | GradeResult``. Every grade
says which grader decided and the normalised forms it compared.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Protocol, runtime_checkable

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem

__all__ = ["ChoiceGrader", "ExactGrader", "GradeResult", "Grader", "NumericGrader", "RegexGrader",
           "normalize_answer", "parse_number", "resolve_grader"]

_WRAPPERS = re.compile(r"^(?:\*\*|__|`|\$|\\\(|\\\[)+|(?:\*\*|__|`|\$|\\\)|\\\])+$")
_BOXED = re.compile(r"\\boxed\{(.*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


class GradeResult(msgspec.Struct, frozen=True, kw_only=True):
    correct: bool
    grader: str
    detail: str = ""


@runtime_checkable
class Grader(Protocol):
    """Decides whether ``answer`` matches ``truth`` for ``problem``."""

    @property
    def name(self) -> str: ...

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult: ...


def normalize_answer(text: str) -> str:
    """Strip what models wrap answers in: whitespace, markdown, ``$...$``, ``\\boxed{}``, a final period."""
    text = text.strip()
    previous = None
    while previous != text:
        previous = text
        text = _WRAPPERS.sub("", text).strip()
        if (boxed := _BOXED.search(text)) is not None:
            text = boxed[1].strip()
        text = text.rstrip(".").strip()
    return text


def parse_number(text: str) -> Fraction | None:
    """A number written as an integer, decimal, ``1,234,567``, ``3/4``, ``\\frac{3}{4}``, ``1e3``,
    ``50%`` (fifty) or ``$12``; the whole text must be the number. ``None`` otherwise."""
    text = normalize_answer(text).replace(" ", "").lstrip("$").rstrip("%")
    if (frac := _FRAC.match(text)) is not None:
        value = Fraction(int(frac[2]), int(frac[3])) if int(frac[3]) else None
        return -value if value is not None and frac[1] else value
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            return Fraction(int(numerator), int(denominator)) if int(denominator) else None
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


class NumericGrader:
    """Right when the numbers are equal within ``rel_tol`` (relative) or ``abs_tol``.

    If the answer is not a bare number, its last number counts ("The answer is 42.").
    """

    name = "numeric"

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> None:
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        expected = parse_number(truth)
        if expected is None:
            return GradeResult(correct=False, grader=self.name, detail=f"ground truth {truth!r} is not a number")
        got = parse_number(answer)
        if got is None:
            numbers = _NUMBER.findall(normalize_answer(answer))
            got = parse_number(numbers[-1]) if numbers else None
        if got is None:
            return GradeResult(correct=False, grader=self.name, detail=f"no number in {answer!r}")
        difference = abs(float(got - expected))
        correct = difference <= max(self.abs_tol, self.rel_tol * abs(float(expected)))
        return GradeResult(correct=correct, grader=self.name, detail=f"{_show(got)} vs {_show(expected)}")


class ExactGrader:
    """Right when the answers match after normalisation (case, spaces, wrappers)."""

    name = "exact"

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        got, expected = _plain(answer), _plain(truth)
        return GradeResult(correct=got == expected, grader=self.name, detail=f"{got!r} vs {expected!r}")


class AutoGrader:
    """``numeric`` when the ground truth is a number, else ``exact``."""

    name = "auto"

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        if parse_number(truth) is not None:
            return NumericGrader().grade(answer, truth, problem)
        return ExactGrader().grade(answer, truth, problem)


class CallableGrader:
    """Adapts a user function ``(answer, truth, problem) -> bool | GradeResult``."""

    def __init__(self, name: str, function: Callable[[str, str, Problem], bool | GradeResult]) -> None:
        self.name = name
        self.function = function

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        result = self.function(answer, truth, problem)
        if isinstance(result, GradeResult):
            return result
        return GradeResult(correct=bool(result), grader=self.name, detail=f"{answer!r} vs {truth!r}")


class ChoiceGrader:
    """Multiple choice: the option letter of the answer ("B", "(b)", "B.", "The answer is B")."""

    name = "choice"
    _LETTER = re.compile(r"(?:^|[\s(\[])([A-J])(?:$|[\s).\]:,])")

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        expected = normalize_answer(truth).strip("()[]. ").upper()
        letters = self._LETTER.findall(normalize_answer(answer).upper())
        got = letters[-1] if letters else None
        return GradeResult(correct=got == expected, grader=self.name, detail=f"{got!r} vs {expected!r}")


class RegexGrader:
    """The ground truth is a regular expression the whole normalised answer must match."""

    name = "regex"

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        got = normalize_answer(answer)
        try:
            correct = re.fullmatch(truth, got, re.IGNORECASE | re.DOTALL) is not None
        except re.error as exc:
            return GradeResult(correct=False, grader=self.name, detail=f"bad pattern {truth!r}: {exc}")
        return GradeResult(correct=correct, grader=self.name, detail=f"{got!r} against /{truth}/")


def resolve_grader(name: str) -> Grader:
    """A grader by name: ``numeric``, ``exact``, ``auto``, ``choice``, ``regex``, ``math``,
    ``judge:MODEL`` or ``package.module:function``. Judges are made anew (they hold a
    connection pool: close them with ``aclose``); the others are shared."""
    if name.startswith("judge:"):
        from open_strawberry.judge import JudgeGrader
        from open_strawberry.limiter import create_limited_backend

        return JudgeGrader(create_limited_backend(name.removeprefix("judge:")))
    return _shared_grader(name)


@lru_cache(maxsize=64)
def _shared_grader(name: str) -> Grader:
    builtin: dict[str, Callable[[], Grader]] = {
        "numeric": NumericGrader, "exact": ExactGrader, "auto": AutoGrader, "choice": ChoiceGrader,
        "regex": RegexGrader}
    if name in builtin:
        return builtin[name]()
    if name == "math":
        from open_strawberry.math_grader import MathGrader

        return MathGrader()
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(f"unknown grader {name!r}: use numeric, exact, auto, choice, regex, math, "
                                 "judge:MODEL or module:function")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"grader {name!r} cannot be loaded: {exc}") from exc
    if not callable(function):
        raise ConfigurationError(f"grader {name!r} is not callable")
    return CallableGrader(name, function)


def _plain(text: str) -> str:
    return " ".join(normalize_answer(text).lower().split())


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value} (~{float(value):.6g})"
