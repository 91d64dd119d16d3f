"""One real server of each kind for the whole ``real`` session (starting one takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.real.servers import RealServer, llama_cpp_python_server, llama_server, thinking_llama_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/real/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def llamacpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with llama_server(tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@pytest.fixture(scope="session")
def llamacpp_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with llama_cpp_python_server(tmp_path_factory.mktemp("llama-cpp-python")) as server:
        yield server


@pytest.fixture(scope="session")
def llamacpp_thinking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with thinking_llama_server(tmp_path_factory.mktemp("llama-server-thinking")) as server:
        yield server
