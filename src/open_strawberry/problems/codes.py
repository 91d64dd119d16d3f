"""Crack-the-code digit puzzles: the clue format, scoring, and a brute-force solver.

A puzzle hides an ``n``-digit code; each clue is a guess with two counts: digits right and
in place, digits right but misplaced (counted as multisets). The prompt lists the clues one
per line in the format :func:`format_puzzle` writes and :func:`parse_puzzle` reads::

    Crack the 3-digit code. Each clue gives a guess and how many of its digits are right:
    - 682: 1 right and in place, 0 right but misplaced
    - 738: nothing is right
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = ["Clue", "candidates", "format_puzzle", "parse_puzzle", "score"]

Clue = tuple[str, int, int]  # (guess, right and in place, right but misplaced)

_HEADER = re.compile(r"Crack the (\d+)-digit code", re.IGNORECASE)
_CLUE = re.compile(r"^\s*-\s*(\d+):\s*(?:(\d+) right and in place, (\d+) right but misplaced|(nothing is right))",
                   re.MULTILINE)


def score(code: str, guess: str) -> tuple[int, int]:
    """(digits right and in place, digits right but misplaced) of ``guess`` against ``code``."""
    placed = sum(a == b for a, b in zip(code, guess, strict=True))
    common = sum(min(code.count(digit), guess.count(digit)) for digit in set(guess))
    return placed, common - placed


def candidates(length: int, clues: Sequence[Clue]) -> list[str]:
    """Every code of ``length`` digits consistent with all ``clues`` (cached: the mock
    server asks again on every turn of a puzzle)."""
    return list(_candidates(length, tuple(clues)))


@lru_cache(maxsize=4096)
def _candidates(length: int, clues: tuple[Clue, ...]) -> tuple[str, ...]:
    if clues:  # narrow the answer for the shorter list of clues, which is cached too
        pool: Iterable[str] = _candidates(length, clues[:-1])
        guess, placed, misplaced = clues[-1]
        return tuple(code for code in pool if score(code, guess) == (placed, misplaced))
    return tuple("".join(digits) for digits in itertools.product("0123456789", repeat=length))


def format_puzzle(length: int, clues: Sequence[Clue]) -> str:
    lines = [f"Crack the {length}-digit code. Each clue gives a guess and how many of its digits are right:"]
    for guess, placed, misplaced in clues:
        if placed == misplaced == 0:
            lines.append(f"- {guess}: nothing is right")
        else:
            lines.append(f"- {guess}: {placed} right and in place, {misplaced} right but misplaced")
    lines.append("What is the code?")
    return "\n".join(lines)


def parse_puzzle(text: str) -> tuple[int, list[Clue]] | None:
    """(code length, clues) of a puzzle written by :func:`format_puzzle`, or ``None``."""
    header = _HEADER.search(text)
    if header is None:
        return None
    clues = [(m[1], int(m[2] or 0), int(m[3] or 0)) for m in _CLUE.finditer(text)]
    return (int(header[1]), clues) if clues else None
