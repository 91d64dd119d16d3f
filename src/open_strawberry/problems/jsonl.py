"""Problems files: JSONL with ``id``, ``prompt``, ``answer`` and optional ``grader`` and ``meta``.

:func:`check_problems` reads the whole file once, streaming, before any call is made, and
stops at the first bad line with an error naming the file, the line and the field
(malformed JSON, a missing or mistyped field, a duplicate id). :func:`read_problems` then
streams the problems; neither holds the file in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem

__all__ = ["ProblemFileError", "check_problems", "read_problems"]

_decoder = msgspec.json.Decoder(Problem)


class ProblemFileError(ConfigurationError):
    """A problems file that cannot be used, with the line at fault."""


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise ProblemFileError(f"{path}: cannot read the problems file: {exc.strerror or exc}") from exc


def _decode(path: Path, number: int, line: bytes) -> Problem:
    try:
        problem = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise ProblemFileError(f"{path}:{number}: {_explain(exc)}") from None
    except msgspec.DecodeError as exc:
        raise ProblemFileError(f"{path}:{number}: not valid JSON ({exc})") from None
    if not problem.id.strip():
        raise ProblemFileError(f"{path}:{number}: field 'id' is empty")
    return problem


def _explain(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    if message.startswith("Object missing required field"):
        field = message.split("`")[1]
        return f"missing field {field!r} (each line needs 'id', 'prompt' and 'answer')"
    if " - at `$." in message:
        problem, where = message.split(" - at `$.", 1)
        return f"field {where.rstrip('`')!r}: {problem}"
    return message


def check_problems(path: str | os.PathLike[str]) -> int:
    """Validate every line of ``path``; return how many problems it holds."""
    path = Path(path)
    seen: dict[str, int] = {}  # {problem id: line it first appeared on}
    for number, line in _lines(path):
        problem = _decode(path, number, line)
        if problem.id in seen:
            raise ProblemFileError(f"{path}:{number}: duplicate id {problem.id!r} (first on line {seen[problem.id]})")
        seen[problem.id] = number
    if not seen:
        raise ProblemFileError(f"{path}: the problems file holds no problems")
    return len(seen)


def read_problems(path: str | os.PathLike[str]) -> Iterator[Problem]:
    """Stream the problems of a file that :func:`check_problems` accepted."""
    path = Path(path)
    for number, line in _lines(path):
        yield _decode(path, number, line)
