"""Graders: a table of equivalent and different answers."""

from __future__ import annotations

import pytest

from open_strawberry import Problem
from open_strawberry.errors import ConfigurationError
from open_strawberry.grading import GradeResult, normalize_answer, open_grader, parse_number

PROBLEM = Problem(id="p", prompt="?", answer="")


async def grade(name: str, answer: str, truth: str) -> GradeResult:
    async with open_grader(name) as grader:
        return await grader.grade(answer, truth, PROBLEM)




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
async def test_numeric(answer: str, truth: str, correct: bool) -> None:
    assert (await grade("numeric", answer, truth)).correct is correct


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [("Paris", "paris", True), ("  New   York. ", "new york", True), ("`042`", "042", True), ("42", "042", False),
     ("Lyon", "Paris", False)],
)
async def test_exact(answer: str, truth: str, correct: bool) -> None:
    assert (await grade("exact", answer, truth)).correct is correct


async def test_auto_picks_numeric_for_numbers_and_exact_otherwise() -> None:
    assert await grade("auto", "7.0", "7") == GradeResult(correct=True, grader="numeric", detail="7 vs 7")
    assert (await grade("auto", "042", "042")).correct  # a number too: 42 == 42
    assert (await grade("auto", "Paris", "paris")).grader == "exact"


async def test_custom_graders_load_from_module_and_function() -> None:
    for name in ("tests.grading.test_graders:ends_the_same", "tests.grading.test_graders:ends_the_same_async"):
        assert await grade(name, "apple", "maple") == GradeResult(correct=True, grader=name,
                                                                  detail="'apple' vs 'maple'")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        await grade("tests.grading.test_graders:missing", "a", "b")
    with pytest.raises(ConfigurationError, match="unknown grader"):
        await grade("levenshtein", "a", "b")


def ends_the_same(answer: str, truth: str, problem: Problem) -> bool:
    return answer[-3:] == truth[-3:]


async def ends_the_same_async(answer: str, truth: str, problem: Problem) -> bool:
    return answer[-3:] == truth[-3:]


def test_normalisation_and_numbers() -> None:
    assert normalize_answer("  **$\\boxed{x+1}$**. ") == "x+1"
    assert parse_number("-\\frac{1}{2}") is not None and float(parse_number("-\\frac{1}{2}")) == -0.5  # type: ignore[arg-type]
    assert parse_number("1/0") is None
    assert parse_number("12 apples") is None


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [("B", "B", True), ("(b)", "B", True), ("The answer is C.", "C", True), ("**D**", "D", True),
     ("A or B? I pick A", "A", True), ("B", "C", False), ("none", "A", False)],
)
async def test_choice(answer: str, truth: str, correct: bool) -> None:
    assert (await grade("choice", answer, truth)).correct is correct


async def test_regex_matches_the_whole_answer() -> None:
    assert (await grade("regex", "Paris, France", r"paris(, france)?")).correct
    assert not (await grade("regex", "Paris is big", r"paris(, france)?")).correct
    assert "bad pattern" in (await grade("regex", "x", "(")).detail


@pytest.fixture(scope="module")
def math_grader():  # type: ignore[no-untyped-def]
    from open_strawberry.grading.math import MathGrader

    grader = MathGrader(timeout_s=3.0)
    yield grader
    grader.close()


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [
        (r"\frac{1}{2}", "0.5", True), ("1/2", r"\frac{1}{2}", True), (r"\sqrt{4}", "2", True),
        (r"2\sqrt{2}", r"\sqrt{8}", True), ("50%", "0.5", True), (r"\boxed{3}", "3", True),
        (r"[1, 2]", r"[1,2]", True), (r"\{1, 2\}", r"\{2, 1\}", True), ("10 cm", "10", True),
        (r"x^2 + 2x + 1", r"(x+1)^2", True), (r"\frac{1}{3}", "0.5", False), ("2", "3", False),
        (r"(1, 2)", r"[1, 2]", False),
    ],
)
async def test_math_equivalence(math_grader, answer: str, truth: str, correct: bool) -> None:  # type: ignore[no-untyped-def]
    result = await math_grader.grade(answer, truth, PROBLEM)
    assert result.correct is correct, result.detail
    assert result.grader == "math" and " vs " in result.detail


async def test_a_runaway_comparison_times_out_and_the_grader_goes_on(math_grader) -> None:  # type: ignore[no-untyped-def]
    result = await math_grader.grade(r"9^{9^{9^{9}}} - 9^{9^{9^{9}}} + 1", "1", PROBLEM)
    if "timed out" not in result.detail:
        pytest.skip(f"this sympy compared it in time: {result.detail}")
    assert not result.correct
    assert (await math_grader.grade("0.25", r"\frac{1}{4}", PROBLEM)).correct  # a fresh worker took over
