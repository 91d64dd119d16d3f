"""Problems files are checked line by line before any call; built-in sets have true answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry.mock import Reasoner
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.problems.codes import candidates, parse_puzzle
from open_strawberry.problems.sources import ProblemFileError, open_problem_source

GOOD = '{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + "{not json}\n", r":2: not valid JSON"),
        (GOOD + '{"id": "b", "prompt": "x"}\n', r":2: missing field 'answer'"),
        (GOOD + '{"id": "b", "prompt": "x", "answer": ["7"]}\n', r":2: field 'answer' must be text, got list"),
        (GOOD + "\n" + GOOD, r":3: duplicate id 'a' \(first on line 1\)"),
        ('{"id": " ", "prompt": "x", "answer": "y"}\n', r":1: field 'id' is empty"),
        ("\n\n", r"holds no problems"),
    ],
)
def test_bad_problem_files_name_the_line_and_the_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text(content)
    with pytest.raises(ProblemFileError, match=message):
        open_problem_source(str(path)).check()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProblemFileError, match="cannot read the problems file"):
        open_problem_source(str(tmp_path / "nope.jsonl")).check()


def test_good_files_stream_with_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text(GOOD + '{"id": "b", "prompt": "p", "answer": "x", "grader": "exact", "meta": {"level": 2}}\n')
    source = open_problem_source(str(path))
    assert source.check() == 2
    second = list(source)[1]
    assert (second.grader, second.meta) == ("exact", {"level": 2})


@pytest.mark.parametrize("name", ["letters", "arithmetic", "codes"])
def test_built_in_sets_have_true_answers_and_the_mock_solves_them(name: str) -> None:
    problems = list(builtin_problems(name, 30, seed=3))
    assert len({p.id for p in problems}) == 30
    assert problems == list(builtin_problems(name, 30, seed=3))  # seeded
    perfect = Reasoner(accuracy=1.0, confident_after=1)
    for problem in problems:
        if name == "codes":
            puzzle = parse_puzzle(problem.prompt)
            assert puzzle is not None and candidates(*puzzle) == [problem.answer]  # exactly one solution
        plan = perfect.plan(problem.prompt, slip=False, rng=__import__("random").Random(0))
        assert plan.answer == problem.answer, problem


def test_unknown_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown problem set 'riddles'"):
        list(builtin_problems("riddles", 1))
