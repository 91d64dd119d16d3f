"""Built-in problem sets with ground truth, generated from a seed: letter counting,
multi-step arithmetic, crack-the-code puzzles (unique solution, checked by brute force),
and ``mixed`` (all three in turn)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from open_strawberry.messages import Problem
from open_strawberry.problems.codes import candidates, format_puzzle, score

__all__ = ["BUILTIN_SETS", "builtin_problems"]

_WORDS = (
    "strawberry", "raspberry", "blueberry", "mississippi", "bookkeeper", "committee", "banana", "parallel",
    "assessment", "successful", "occurrence", "referrer", "letter", "balloon", "coffee", "address", "embarrass",
    "necessary", "accommodate", "possession", "millennium", "parallelogram", "tomorrow", "beginning", "engineer",
    "peppermint", "cinnamon", "hippopotamus", "abracadabra", "onomatopoeia", "tennessee", "committed",
    "questionnaire", "connoisseur", "bureaucracy", "rhythm", "aardvark", "llama", "giraffe", "kangaroo",
)


def _letters(rng: random.Random, index: int) -> Problem:
    word = rng.choice(_WORDS)
    letter = rng.choice(sorted(set(word))) if rng.random() < 0.9 else rng.choice("xzqj")
    return Problem(id=f"letters-{index}", prompt=f"How many '{letter}'s are in '{word}'?",
                   answer=str(word.count(letter)), grader="numeric", meta={"kind": "letters"})


def _arithmetic(rng: random.Random, index: int) -> Problem:
    expression = str(rng.randint(2, 20))
    for _ in range(rng.randint(2, 4)):
        op = rng.choice("+-*")
        term = str(rng.randint(2, 12) if op == "*" else rng.randint(2, 50))
        expression = f"({expression}) {op} {term}" if op == "*" and rng.random() < 0.6 else f"{expression} {op} {term}"
    return Problem(id=f"arithmetic-{index}", prompt=f"What is {expression}?", answer=str(eval(expression)),
                   grader="numeric", meta={"kind": "arithmetic"})


def _code(rng: random.Random, index: int) -> Problem:
    """A 3-digit code and clues, added until exactly one code fits them all."""
    while True:
        code = "".join(rng.sample("0123456789", 3))
        clues: list[tuple[str, int, int]] = []
        while len(clues) < 8:
            guess = "".join(rng.sample("0123456789", 3))
            if guess == code or any(guess == g for g, _, _ in clues):
                continue
            clues.append((guess, *score(code, guess)))
            if len(candidates(3, clues)) == 1:
                return Problem(id=f"codes-{index}", prompt=format_puzzle(3, clues), answer=code, grader="exact",
                               meta={"kind": "codes"})


_MAKERS = {"letters": _letters, "arithmetic": _arithmetic, "codes": _code}
BUILTIN_SETS = (*_MAKERS, "mixed")


def builtin_problems(name: str, count: int, seed: int = 0) -> Iterator[Problem]:
    """``count`` problems of the set ``name``, the same for the same seed."""
    if name not in BUILTIN_SETS:
        raise ValueError(f"unknown problem set {name!r}; built in: {', '.join(BUILTIN_SETS)}")
    rng = random.Random(f"{name}:{seed}")
    kinds = list(_MAKERS) if name == "mixed" else [name]
    for index in range(count):
        yield _MAKERS[kinds[index % len(kinds)]](rng, index)
