"""Built-in problem sets with ground truth, generated from a seed: letter counting,
multi-step arithmetic, crack-the-code puzzles (unique solution, checked by brute force),
and ``mixed`` (all three in turn).

Each set has a **difficulty ladder** (``level``, from 1 upward; :data:`LEVELS` gives each
set's top level), so that there is always a level a given model can only barely do:

==========  ==========================================================================
set         levels
==========  ==========================================================================
letters     1: a letter in a three-letter word; 2: four or five letters; 3: six to
            eight; 4: the classic tricky words (strawberry, mississippi...); 5: long
            words of many repeated letters
arithmetic  1: a one-digit sum; 2: a two-digit and a one-digit number, + or -;
            3: two two-digit numbers, + or -; 4: a one-digit product; 5: three terms
            with one product; 6: two to four operations (the set without a level);
            7: four or five operations on larger numbers
codes       1: a 2-digit code; 2: a 3-digit code (the set without a level); 3: a 4-digit code
==========  ==========================================================================

Without a level, a set is the one it always was (same seed, same problems, drawn with
replacement), and its problems record the level they match. With one, a rung gives each prompt
once until it has no other. Every problem records its kind and level in ``meta``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator

from open_strawberry.messages import Problem
from open_strawberry.problems.codes import candidates, format_puzzle, score

__all__ = ["BUILTIN_SETS", "DEFAULT_LEVELS", "LEVELS", "builtin_problems", "parse_levels"]

_WORDS = (
    "strawberry", "raspberry", "blueberry", "mississippi", "bookkeeper", "committee", "banana", "parallel",
    "assessment", "successful", "occurrence", "referrer", "letter", "balloon", "coffee", "address", "embarrass",
    "necessary", "accommodate", "possession", "millennium", "parallelogram", "tomorrow", "beginning", "engineer",
    "peppermint", "cinnamon", "hippopotamus", "abracadabra", "onomatopoeia", "tennessee", "committed",
    "questionnaire", "connoisseur", "bureaucracy", "rhythm", "aardvark", "llama", "giraffe", "kangaroo",
)
_SHORT = ("cat", "dog", "sun", "hat", "pen", "cup", "box", "red", "map", "bus", "egg", "zoo", "bee", "owl", "fox",
          "jam", "leg", "mud", "net", "pig", "toy", "van", "web", "yak", "ant", "bed", "car", "fan", "gum", "ice")
_MEDIUM = ("book", "tree", "apple", "moon", "lemon", "sheep", "grass", "hello", "door", "kitten", "puppy", "bread",
           "river", "green", "house", "seed", "ball", "sleep", "tooth", "mirror", "paper", "yellow", "cheese", "goose",
           "happy", "pizza", "spoon", "queen", "butter", "letter")
_LONG = ("elephant", "pumpkin", "blossom", "chocolate", "umbrella", "necklace", "possible", "sunflower", "mountain",
         "tattoo", "pepper", "carrot", "dinosaur", "balloon", "address", "cabbage", "success", "village", "running",
         "bubble", "scissors", "holiday", "seventeen", "assassin", "giraffe", "cinnamon", "engineer", "bookshelf")
_LONGEST = ("hippopotamus", "onomatopoeia", "mississippi", "parallelogram", "abracadabra", "bookkeeping",
            "assassination", "embarrassment", "disappointment", "accommodation", "possessiveness", "committees",
            "unnecessarily", "senselessness", "successfully", "strawberries", "tintinnabulation",
            "interconnectedness", "millionaire", "keenness")

# {set: top level}; the set without a level matches DEFAULT_LEVELS
LEVELS = {"letters": 5, "arithmetic": 7, "codes": 3}
DEFAULT_LEVELS = {"letters": 4, "arithmetic": 6, "codes": 2}


def _count_question(rng: random.Random, words: tuple[str, ...], absent: float) -> tuple[str, str]:
    word = rng.choice(words)
    letter = rng.choice(sorted(set(word))) if rng.random() >= absent else rng.choice(
        sorted(set("xzqjvk") - set(word)))
    return letter, word


def _letters(rng: random.Random, index: int, level: int | None) -> Problem:
    if level is None:  # the set as it always was (kept identical for the same seed)
        word = rng.choice(_WORDS)
        letter = rng.choice(sorted(set(word))) if rng.random() < 0.9 else rng.choice("xzqj")
    else:
        words = {1: _SHORT, 2: _MEDIUM, 3: _LONG, 4: _WORDS, 5: _LONGEST}[level]
        letter, word = _count_question(rng, words, absent=0.0 if level == 1 else 0.1)
        if level >= 4:  # ask mostly about a repeated letter: that is where counting goes wrong
            repeated = sorted(c for c in set(word) if word.count(c) > 1)
            if repeated and rng.random() < 0.7:
                letter = rng.choice(repeated)
    return _problem("letters", index, level, f"How many '{letter}'s are in '{word}'?", str(word.count(letter)),
                    "numeric")


def _expression(rng: random.Random, level: int) -> str:
    if level == 1:
        return f"{rng.randint(1, 9)} + {rng.randint(1, 9)}"
    if level == 2:
        a, b = rng.randint(10, 99), rng.randint(1, 9)
        return f"{a} {rng.choice('+-')} {b}"
    if level == 3:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"{max(a, b)} {rng.choice('+-')} {min(a, b)}"
    if level == 4:
        return f"{rng.randint(2, 9)} * {rng.randint(2, 9)}"
    if level == 5:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 30)
        return rng.choice([f"{a} * {b} + {c}", f"({c} + {a}) * {b}", f"{c} + {a} * {b}"])
    expression = str(rng.randint(10, 99))
    for _ in range(rng.randint(4, 5)):
        op = rng.choice("+-*")
        term = str(rng.randint(3, 19) if op == "*" else rng.randint(10, 199))
        expression = f"({expression}) {op} {term}" if op == "*" and rng.random() < 0.6 else f"{expression} {op} {term}"
    return expression


def _arithmetic(rng: random.Random, index: int, level: int | None) -> Problem:
    if level is None or level == 6:  # the set as it always was
        expression = str(rng.randint(2, 20))
        for _ in range(rng.randint(2, 4)):
            op = rng.choice("+-*")
            term = str(rng.randint(2, 12) if op == "*" else rng.randint(2, 50))
            expression = (f"({expression}) {op} {term}" if op == "*" and rng.random() < 0.6
                          else f"{expression} {op} {term}")
    else:
        expression = _expression(rng, level)
    return _problem("arithmetic", index, level, f"What is {expression}?", str(eval(expression)), "numeric")


def _code(rng: random.Random, index: int, level: int | None) -> Problem:
    """A code and clues, added until exactly one code fits them all."""
    length = 3 if level is None else level + 1
    max_clues = {2: 6, 3: 8, 4: 12}[length]
    while True:
        code = "".join(rng.sample("0123456789", length))
        clues: list[tuple[str, int, int]] = []
        while len(clues) < max_clues:
            guess = "".join(rng.sample("0123456789", length))
            if guess == code or any(guess == g for g, _, _ in clues):
                continue
            clues.append((guess, *score(code, guess)))
            if len(candidates(length, clues)) == 1:
                return _problem("codes", index, level, format_puzzle(length, clues), code, "exact")


def _problem(kind: str, index: int, level: int | None, prompt: str, answer: str, grader: str) -> Problem:
    shown = DEFAULT_LEVELS[kind] if level is None else level
    problem_id = f"{kind}-{index}" if level is None else f"{kind}-L{level}-{index}"
    return Problem(id=problem_id, prompt=prompt, answer=answer, grader=grader, meta={"kind": kind, "level": shown})


_MAKERS: dict[str, Callable[[random.Random, int, int | None], Problem]] = {
    "letters": _letters, "arithmetic": _arithmetic, "codes": _code}
BUILTIN_SETS = (*_MAKERS, "mixed")


def parse_levels(text: str) -> tuple[int, int]:
    """``"3"`` → (3, 3); ``"1-4"`` → (1, 4). ValueError for anything else (or a level below 1)."""
    low, sep, high = text.strip().partition("-")
    try:
        levels = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise ValueError(f"level {text!r}: write a level (3) or a range (1-4)") from None
    if levels[0] < 1 or levels[1] < levels[0]:
        raise ValueError(f"level {text!r}: levels start at 1, and a range goes upward (1-4)")
    return levels


def builtin_problems(name: str, count: int, seed: int = 0, *,
                     level: int | tuple[int, int] | None = None) -> Iterator[Problem]:
    """``count`` problems of the set ``name``, the same for the same seed (and level).

    ``level`` picks a rung of the set's difficulty ladder (see the module docstring), or a
    range ``(low, high)`` whose levels take turns; ``mixed`` gives each kind the level, capped at
    that kind's top level. A rung gives each prompt once until it has no other (one-digit sums
    have 81), and repeats them after that. Ids are ``KIND-INDEX`` without a level and
    ``KIND-LLEVEL-INDEX`` with one. A level above the set's top level is a ValueError.
    """
    if name not in BUILTIN_SETS:
        raise ValueError(f"unknown problem set {name!r}; built in: {', '.join(BUILTIN_SETS)}")
    kinds = list(_MAKERS) if name == "mixed" else [name]
    if level is None:
        rng = random.Random(f"{name}:{seed}")
        for index in range(count):
            kind = kinds[index % len(kinds)]
            yield _MAKERS[kind](rng, index, None)
        return
    low, high = (level, level) if isinstance(level, int) else level
    top = max(LEVELS[kind] for kind in kinds)
    if low < 1 or high < low or high > top:
        shown = str(low) if low == high else f"{low}-{high}"
        raise ValueError(f"level {shown} of {name!r}: levels go from 1 to {top}")
    rng = random.Random(f"{name}:{seed}:{low}-{high}")
    pools: dict[tuple[str, int], _Pool] = {}
    for index in range(count):
        kind = kinds[index % len(kinds)]
        rung = min(low + (index // len(kinds)) % (high - low + 1), LEVELS[kind])
        yield pools.setdefault((kind, rung), _Pool()).draw(functools.partial(_MAKERS[kind], rng, index, rung))


class _Pool:
    """The prompts one rung of one set has given: a draw without replacement, until the rung
    seems to hold no other (no new prompt in ten times as many draws as it has given, at least
    a thousand: a prompt left in a pool of N is missed with odds of e^-10); then with."""

    def __init__(self) -> None:
        self.given: set[str] = set()
        self.exhausted = False

    def draw(self, make: Callable[[], Problem]) -> Problem:
        problem = make()
        tries = 0 if self.exhausted else 10 * max(100, len(self.given))
        while problem.prompt in self.given and tries:
            problem, tries = make(), tries - 1
        self.exhausted = problem.prompt in self.given
        self.given.add(problem.prompt)
        return problem
