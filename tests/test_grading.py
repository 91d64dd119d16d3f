"""Graders: a table of equivalent and different answers."""

from __future__ import annotations

import pytest

from open_strawberry import Problem
from open_strawberry.errors import ConfigurationError
from open_strawberry.grading import GradeResult, normalize_answer, parse_number, resolve_grader

PROBLEM = Problem(id="p", prompt="?", answer="")


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [
        ("42", "42", True), ("42.0", "42", True), ("1,234,567", "1234567", True), ("3/4", "0.75", True),
        (r"\frac{3}{4}", "0.75", True), ("$\\boxed{12}$", "12", True), ("**-5**", "-5", True),
        ("The answer is 17.", "17", True), ("1e3", "1000", True), ("50%", "50", True), ("$12", "12", True),
        ("0.3333333", "1/3", True), ("41", "42", False), ("1,23", "123", False), ("three", "3", False),
        ("", "3", False), ("0.76", "0.75", False),
    ],
)
def test_numeric(answer: str, truth: str, correct: bool) -> None:
    assert resolve_grader("numeric").grade(answer, truth, PROBLEM).correct is correct


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [("Paris", "paris", True), ("  New   York. ", "new york", True), ("`042`", "042", True), ("42", "042", False),
     ("Lyon", "Paris", False)],
)
def test_exact(answer: str, truth: str, correct: bool) -> None:
    assert resolve_grader("exact").grade(answer, truth, PROBLEM).correct is correct


def test_auto_picks_numeric_for_numbers_and_exact_otherwise() -> None:
    auto = resolve_grader("auto")
    assert auto.grade("7.0", "7", PROBLEM) == GradeResult(correct=True, grader="numeric", detail="7 vs 7")
    assert auto.grade("042", "042", PROBLEM).correct  # a number too: 42 == 42
    assert auto.grade("Paris", "paris", PROBLEM).grader == "exact"


def test_custom_graders_load_from_module_and_function() -> None:
    name = "tests.test_grading:ends_the_same"
    assert resolve_grader(name).grade("apple", "maple", PROBLEM) == GradeResult(correct=True, grader=name,
                                                                                 detail="'apple' vs 'maple'")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        resolve_grader("tests.test_grading:missing")
    with pytest.raises(ConfigurationError, match="unknown grader"):
        resolve_grader("levenshtein")


def ends_the_same(answer: str, truth: str, problem: Problem) -> bool:
    return answer[-3:] == truth[-3:]


def test_normalisation_and_numbers() -> None:
    assert normalize_answer("  **$\\boxed{x+1}$**. ") == "x+1"
    assert parse_number("-\\frac{1}{2}") is not None and float(parse_number("-\\frac{1}{2}")) == -0.5  # type: ignore[arg-type]
    assert parse_number("1/0") is None
    assert parse_number("12 apples") is None
