"""The difficulty ladder of the built-in sets: every level has true answers, records its level,
and the sets without a level are what they always were."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from open_strawberry.mock import Reasoner
from open_strawberry.problems.builtin import DEFAULT_LEVELS, LEVELS, builtin_problems, parse_levels
from open_strawberry.problems.codes import candidates, parse_puzzle

LADDER = [(name, level) for name, top in LEVELS.items() for level in range(1, top + 1)]


@pytest.mark.parametrize(("name", "level"), LADDER)
def test_every_level_has_true_answers_and_records_its_level(name: str, level: int) -> None:
    problems = list(builtin_problems(name, 20, seed=5, level=level))
    assert problems == list(builtin_problems(name, 20, seed=5, level=level))  # seeded
    assert len({p.id for p in problems}) == 20 and all(p.id.startswith(f"{name}-L{level}-") for p in problems)
    assert {(p.meta["kind"], p.meta["level"]) for p in problems} == {(name, level)}
    perfect = Reasoner(accuracy=1.0, confident_after=1)
    for problem in problems:
        if name == "codes":
            puzzle = parse_puzzle(problem.prompt)
            assert puzzle is not None and candidates(*puzzle) == [problem.answer] and len(problem.answer) == level + 1
        assert perfect.plan(problem.prompt, slip=False, rng=random.Random(0)).answer == problem.answer, problem


def test_the_lowest_rungs_are_trivially_easy() -> None:
    for problem in builtin_problems("arithmetic", 30, level=1):
        a, plus, b = problem.prompt.removeprefix("What is ").removesuffix("?").split()
        assert plus == "+" and len(a) == len(b) == 1
    for problem in builtin_problems("letters", 30, level=1):
        word = problem.prompt.split("'")[3]
        assert len(word) == 3 and int(problem.answer) >= 1


def test_harder_levels_ask_more() -> None:
    def mean_length(level: int) -> float:
        problems = list(builtin_problems("arithmetic", 40, level=level))
        return sum(len(p.prompt) for p in problems) / len(problems)

    lengths = [mean_length(level) for level in (1, 3, 5, 7)]
    assert lengths == sorted(lengths)


def test_a_range_takes_turns_and_mixed_caps_each_kind() -> None:
    levels = [p.meta["level"] for p in builtin_problems("arithmetic", 6, level=(2, 4))]
    assert levels == [2, 3, 4, 2, 3, 4]
    mixed = list(builtin_problems("mixed", 6, level=5))
    assert [(p.meta["kind"], p.meta["level"]) for p in mixed[:3]] == [("letters", 5), ("arithmetic", 5), ("codes", 3)]


def test_without_a_level_the_sets_record_the_level_they_match() -> None:
    for name, level in DEFAULT_LEVELS.items():
        problem = next(builtin_problems(name, 1))
        assert problem.id == f"{name}-0" and problem.meta == {"kind": name, "level": level}


@pytest.mark.parametrize(("text", "levels"), [("3", (3, 3)), ("1-4", (1, 4)), (" 2 ", (2, 2))])
def test_levels_parse(text: str, levels: tuple[int, int]) -> None:
    assert parse_levels(text) == levels


@pytest.mark.parametrize("text", ["0", "4-2", "x", "1-", "-3"])
def test_bad_levels_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="level"):
        parse_levels(text)


def test_a_level_above_the_top_is_refused() -> None:
    with pytest.raises(ValueError, match="levels go from 1 to 3"):
        list(builtin_problems("codes", 1, level=4))


def test_the_problems_command_takes_a_level(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from open_strawberry.cli import main

    assert main(["problems", "arithmetic", "--count", "4", "--level", "1-2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["meta"]["level"] for p in lines] == [1, 2, 1, 2]
    assert main(["problems", "codes", "--level", "4"]) == 1
    assert "--level: level 4 of 'codes': levels go from 1 to 3" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "level", "distinct"), [("arithmetic", 1, 81), ("arithmetic", 4, 64),
                                                         ("letters", 1, 87)])
def test_a_level_gives_each_prompt_once_until_it_has_no_other(name: str, level: int, distinct: int) -> None:
    problems = list(builtin_problems(name, distinct + 20, seed=2, level=level))
    prompts = [problem.prompt for problem in problems]
    assert len(set(prompts[:distinct])) == distinct  # without replacement: every prompt before any repeat
    assert len(set(prompts)) == distinct  # then repeats: the rung holds no other
    assert len({problem.id for problem in problems}) == len(problems)


def test_the_problems_command_says_when_prompts_repeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from open_strawberry.cli import main

    assert main(["problems", "arithmetic", "--level", "1", "--count", "100", "--out", str(tmp_path / "p.jsonl")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1] == ("--count 100: arithmetic at --level 1 has only 81 distinct prompts; the other 19 problems "
                      "repeat them, so parts split from this file can share problems")
    assert len({json.loads(line)["prompt"] for line in (tmp_path / "p.jsonl").read_text().splitlines()}) == 81
    assert main(["problems", "arithmetic", "--level", "1", "--count", "81"]) == 0
    assert capsys.readouterr().err == ""  # as many as it has: nothing repeats
    assert main(["problems", "letters", "--count", "100"]) == 0
    assert "distinct prompts (a set without --level draws with replacement)" in capsys.readouterr().err
