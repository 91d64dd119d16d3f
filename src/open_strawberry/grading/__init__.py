"""Grading: is a final answer right?

- :mod:`~open_strawberry.grading.base`: the :class:`Grader` protocol and :class:`GradeResult`;
- :mod:`~open_strawberry.grading.answers`: reading answers (normalisation, numbers);
- :mod:`~open_strawberry.grading.basic`: ``numeric``, ``exact``, ``auto``, ``choice``, ``regex``,
  and :class:`CallableGrader` for your own function;
- :mod:`~open_strawberry.grading.math`: ``math``, symbolic equivalence in a killable worker;
- :mod:`~open_strawberry.grading.judge`: ``judge:MODEL``, an LLM decides;
- :mod:`~open_strawberry.grading.registry`: graders by name, and which names a data file may use.
"""

from open_strawberry.grading.answers import last_number, normalize_answer, parse_number
from open_strawberry.grading.base import Grader, GradeResult
from open_strawberry.grading.basic import (
    AutoGrader,
    CallableGrader,
    ChoiceGrader,
    ExactGrader,
    NumericGrader,
    RegexGrader,
)
from open_strawberry.grading.judge import JudgeGrader, parse_judgement
from open_strawberry.grading.math import MathGrader
from open_strawberry.grading.registry import BUILTIN_GRADERS, check_grader_name, open_grader

__all__ = [
    "BUILTIN_GRADERS",
    "AutoGrader",
    "CallableGrader",
    "ChoiceGrader",
    "ExactGrader",
    "GradeResult",
    "Grader",
    "JudgeGrader",
    "MathGrader",
    "NumericGrader",
    "RegexGrader",
    "check_grader_name",
    "last_number",
    "normalize_answer",
    "open_grader",
    "parse_judgement",
    "parse_number",
]
