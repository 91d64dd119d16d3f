"""The scripted reasoner works the built-in problem kinds step by step, seeded."""

from __future__ import annotations

import re

import pytest

from open_strawberry.mock import Reasoner
from open_strawberry.problems.codes import candidates, format_puzzle

FINAL = re.compile(r"<final_answer>(.*?)</final_answer>")
ASK = "If you are confident, give your final answer in <final_answer> tags; otherwise keep going."
PUZZLE = format_puzzle(3, [("682", 1, 0), ("614", 0, 1), ("206", 0, 2), ("738", 0, 0), ("780", 0, 1)])


def run(reasoner: Reasoner, problem: str, seed: int, turns: int = 20) -> tuple[str | None, list[str]]:
    """Ask for a final answer every turn; return it and the assistant turns."""
    messages = [("user", problem)]
    replies = []
    for _ in range(turns):
        reply = reasoner.reply("Reason step by step.", messages, seed)
        replies.append(reply)
        if (found := FINAL.search(reply)) is not None:
            return found[1], replies
        messages += [("assistant", reply), ("user", ASK)]
    return None, replies


@pytest.mark.parametrize(
    ("problem", "answer", "steps"),
    [
        ("How many r's are in strawberry?", "3", 4),
        ("How many 's's are in 'mississippi'?", "4", 4),
        ("What is (12 + 7) * 3 - 4?", "53", 3),
        ("What is 2 - 10 * 3?", "-28", 2),
        (PUZZLE, "042", 6),
    ],
)
def test_a_perfect_reasoner_solves_each_kind_in_small_steps(problem: str, answer: str, steps: int) -> None:
    final, replies = run(Reasoner(accuracy=1.0, confident_after=1), problem, seed=0)
    assert final == answer
    assert len(replies) == steps + 1  # one turn per step, then the answer


def test_it_answers_only_once_confident() -> None:
    final, replies = run(Reasoner(accuracy=1.0, confident_after=6), "What is 1 + 2?", seed=0)
    assert final == "3"
    assert len(replies) == 7
    assert all("not confident" in reply for reply in replies[1:6])


def test_a_slipping_reasoner_ends_wrong_and_the_verifier_catches_it() -> None:
    reasoner = Reasoner(accuracy=0.0, confident_after=1)
    for problem, right in (("How many r's are in strawberry?", "3"), ("What is (12 + 7) * 3 - 4?", "53"),
                           (PUZZLE, "042")):
        final, replies = run(reasoner, problem, seed=1)
        assert final is not None and final != right
        critique = reasoner.reply("You are a strict verifier.", [("user", problem + "\n" + "\n".join(replies))])
        score = float(re.search(r"<score>([\d.]+)</score>", critique)[1])  # type: ignore[index]
        assert score < 0.5, critique
        assert "mistake" in critique


def test_the_verifier_passes_correct_work() -> None:
    reasoner = Reasoner(accuracy=1.0, confident_after=1)
    _, replies = run(reasoner, PUZZLE, seed=2)
    critique = reasoner.reply("You are a critic of reasoning.",
                              [("user", "Check these steps:\n" + PUZZLE + "\n" + "\n".join(replies))])
    assert float(re.search(r"<score>([\d.]+)</score>", critique)[1]) >= 0.8  # type: ignore[index]


def test_accuracy_is_the_share_of_right_traces_and_seeds_replay() -> None:
    reasoner = Reasoner(accuracy=0.7, confident_after=1, seed=11)
    outcomes = [run(reasoner, "How many e's are in bookkeeper?", seed=s)[0] == "3" for s in range(300)]
    assert 0.6 <= sum(outcomes) / len(outcomes) <= 0.8
    assert [run(reasoner, "How many e's are in bookkeeper?", seed=s)[0] == "3" for s in range(300)] == outcomes


def test_unknown_prompts_still_get_plausible_steps_and_an_answer() -> None:
    final, replies = run(Reasoner(confident_after=1), "Summarise the plot of a novel in 12 words.", seed=0)
    assert final == "12"
    assert all(reply.strip() for reply in replies)


def test_puzzle_helpers_agree() -> None:
    assert candidates(3, [("682", 1, 0), ("614", 0, 1), ("206", 0, 2), ("738", 0, 0), ("780", 0, 1)]) == ["042"]
