"""Graders by name, and who may name which.

``numeric``, ``exact``, ``auto``, ``choice``, ``regex`` and ``math`` are *built in*: a problem
in a data file may ask for one of them. ``judge:MODEL`` and ``package.module:function`` send
data to a model server or run code, so only the person running the job names them (the
command line, a config file, the Python API); a problems file that names one is refused
before any call, without importing or contacting anything.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from open_strawberry.errors import ConfigurationError
from open_strawberry.grading import basic
from open_strawberry.grading.base import Grader
from open_strawberry.grading.judge import JudgeGrader
from open_strawberry.grading.math import MathGrader
from open_strawberry.limiter import create_limited_backend

__all__ = ["BUILTIN_GRADERS", "check_grader_name", "open_grader"]

BUILTIN_GRADERS = ("auto", "numeric", "exact", "choice", "regex", "math")
_CHEAP = {"numeric": basic.NumericGrader, "exact": basic.ExactGrader, "auto": basic.AutoGrader,
          "choice": basic.ChoiceGrader, "regex": basic.RegexGrader}
_USAGE = "use numeric, exact, auto, choice, regex, math, judge:MODEL or module:function"


def check_grader_name(name: object, *, trusted: bool) -> str:
    """``name`` if it names a grader that may be used, else ConfigurationError; loads nothing.

    ``trusted`` is true for what the user typed (command line, config file, Python API) and
    false for a problem's own ``grader`` field, which may only name a built-in grader.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"grader must be a string, got {type(name).__name__}")
    if name in BUILTIN_GRADERS:
        return name
    if not trusted:
        raise ConfigurationError(f"grader {name!r} is not allowed in a problems file: it may name a built-in "
                                 f"grader ({', '.join(BUILTIN_GRADERS)}); judges and module:function graders "
                                 "are given with --grader")
    if name.startswith("judge:"):
        if not name.removeprefix("judge:"):
            raise ConfigurationError("grader 'judge:' names no model: use judge:provider:model")
        return name
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(f"unknown grader {name!r}: {_USAGE}")
    return name


@asynccontextmanager
async def open_grader(name: str, *, api_key_env: str | None = None, timeout_s: float = 600.0) -> AsyncIterator[Grader]:
    """The grader ``name`` names, open for the block and closed after it (judges hold a
    connection pool, ``math`` a worker process). The name is trusted: check names that come
    from data with :func:`check_grader_name` first."""
    check_grader_name(name, trusted=True)
    if name in _CHEAP:
        yield _CHEAP[name]()
    elif name == "math":
        grader = MathGrader()
        try:
            yield grader
        finally:
            await grader.aclose()
    elif name.startswith("judge:"):
        backend = create_limited_backend(name.removeprefix("judge:"), api_key_env=api_key_env, timeout_s=timeout_s)
        try:
            yield JudgeGrader(backend)
        finally:
            await backend.aclose()
    else:
        yield basic.CallableGrader(name, _load_function(name))


def _load_function(name: str) -> Callable[..., Any]:
    module_name, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"grader {name!r} cannot be loaded: {exc}") from None
    if not callable(function):
        raise ConfigurationError(f"grader {name!r} is not callable")
    return function  # type: ignore[no-any-return]
