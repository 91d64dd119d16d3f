"""The ``math`` grader: equivalence of LaTeX and plain answers with the ``math-verify`` library
(fractions, ``\\frac``, ``\\sqrt``, percentages, intervals, sets, units stripped), with a hard
timeout per comparison.

Symbolic comparison can run away on a pathological answer (``9^{9^{9^9}}``), so it runs in
a child process that is killed and replaced when a comparison passes ``timeout_s``: the run
goes on and the answer counts as wrong, with the timeout named in the grade's detail.
Needs the ``math`` extra: ``pip install -e '.[math]'``.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

import anyio.to_thread

from open_strawberry.errors import ConfigurationError
from open_strawberry.grading.answers import normalize_answer
from open_strawberry.grading.base import GradeResult
from open_strawberry.messages import Problem

__all__ = ["MathGrader"]

_STARTUP_S = 60.0


def _serve(connection: Connection, timeout_s: int) -> None:  # pragma: no cover - runs in the child process
    from math_verify import parse, verify  # type: ignore[import-untyped]

    while True:
        try:
            answer, truth = connection.recv()
        except EOFError:
            return
        try:
            gold = parse(truth if "$" in truth else f"${truth}$", parsing_timeout=timeout_s)
            target = parse(answer if "$" in answer else f"${answer}$", parsing_timeout=timeout_s)
            correct = bool(gold and target and verify(gold, target, timeout_seconds=timeout_s))
            connection.send((correct, f"{_shown(target)} vs {_shown(gold)}"))
        except Exception as exc:
            connection.send((False, f"could not compare: {type(exc).__name__}: {exc}"))


def _shown(parsed: Any) -> str:
    return str(parsed[0]) if parsed else "nothing parsed"


class MathGrader:
    name = "math"

    def __init__(self, timeout_s: float = 5.0) -> None:
        try:
            import math_verify  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError("the 'math' grader needs math-verify: "
                                     "pip install -e '.[math]'") from exc
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: Any = None
        self._connection: Connection | None = None

    def _start(self) -> Connection:
        """The child's end of the pipe, starting the child (and waiting out its imports) if needed."""
        if self._connection is None:
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(child, max(1, math.ceil(self.timeout_s))),
                                            daemon=True, name="math-grader")
            self._process.start()
            child.close()
            self._connection = parent
            parent.send(("1", "1"))  # answered once math-verify and sympy are imported
            if not parent.poll(_STARTUP_S):
                self._stop()
                raise ConfigurationError(f"the math grader's worker did not start within {_STARTUP_S:g} s")
            parent.recv()
        return self._connection

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def close(self) -> None:
        with self._lock:
            self._stop()

    async def aclose(self) -> None:
        """Stop the worker process (waiting for a comparison in progress, up to ``timeout_s``)."""
        await anyio.to_thread.run_sync(self.close)

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        """Compare in the worker process, waiting in a worker thread for up to ``timeout_s`` (plus
        the child's start-up on first use); the event loop goes on meanwhile."""
        return await anyio.to_thread.run_sync(self.grade_blocking, answer, truth)

    def grade_blocking(self, answer: str, truth: str) -> GradeResult:
        """:meth:`grade` without the event loop: blocks the calling thread."""
        answer, truth = normalize_answer(answer), normalize_answer(truth)
        with self._lock:
            connection = self._start()
            connection.send((answer, truth))
            if connection.poll(self.timeout_s):
                correct, detail = connection.recv()
                return GradeResult(correct=correct, grader=self.name, detail=detail)
            self._stop()  # a runaway comparison: kill it, the next grade starts a fresh worker
        return GradeResult(correct=False, grader=self.name,
                           detail=f"comparison timed out after {self.timeout_s:g} s: {answer!r} vs {truth!r}")
