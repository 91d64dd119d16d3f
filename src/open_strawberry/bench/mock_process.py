"""The mock server in a child process, for ``bench --mock`` and the calibration benchmark: the
client under test keeps this process's event loop and CPU to itself.

:func:`mock_server_process` starts the child and blocks until the mock accepts connections:
the child sends its URL over a pipe once it listens (a readiness handshake, no output to
parse). On the way out, however it is taken (a normal end, an error, Ctrl-C), it closes its
end of the pipe, the child's cue to stop, waits for the child to stop, and kills it if it
does not. If this process dies without running that (SIGTERM, SIGKILL), the operating
system closes the pipe all the same and the child stops on its own: it never outlives its
parent. A Ctrl-C at the terminal reaches both processes; the child ignores it and leaves the
stopping to its parent.

The child is started with multiprocessing's ``spawn`` method, which imports the parent's main
module: a script that uses this must start its work under ``if __name__ == "__main__":``
(the command line and pytest do).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from multiprocessing.connection import Connection

import anyio

from open_strawberry.errors import OpenStrawberryError
from open_strawberry.mock import MockConfig, open_mock_server

__all__ = ["mock_server_process"]

_STOP_TIMEOUT_S = 10.0


@contextmanager
def mock_server_process(config: MockConfig | None = None, *, host: str = "127.0.0.1",
                        start_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve the mock with ``config`` in a child process on a free port; yields its URL
    (``http://HOST:PORT``; OpenAI clients add ``/v1``) once it accepts connections.

    Blocks while the child starts (an interpreter and the package to import: about a
    second) and while it stops. Raises :class:`OpenStrawberryError` if it is not serving
    within ``start_timeout_s`` or fails to start (a busy port, a bad host).
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(config or MockConfig(), host, theirs), daemon=True,
                              name="open-strawberry-mock")
    try:
        with _children_ignore_sigint():
            process.start()
        theirs.close()  # the child holds its own copy: one end in each process, so each sees the other's exit
        yield _wait_until_serving(ours, process, start_timeout_s)
    finally:
        ours.close()  # the cue to stop
        if process.pid is not None:
            process.join(_STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        process.close()


@contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Processes started in the block ignore SIGINT from their first instruction on (an ignored
    signal stays ignored through exec), so a Ctrl-C at the terminal while the child imports is
    no traceback of its own. A Ctrl-C in the few milliseconds the block takes is lost to this
    process too; only the main thread can change how signals are handled."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield  # a handler not set from Python cannot be put back: leave it alone
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_until_serving(ours: Connection, process: multiprocessing.process.BaseProcess, timeout_s: float) -> str:
    if not ours.poll(timeout_s):
        raise OpenStrawberryError(f"the mock server did not start within {timeout_s:g} s")
    try:
        ready, detail = ours.recv()
    except EOFError:
        process.join(_STOP_TIMEOUT_S)
        raise OpenStrawberryError(f"the mock server process exited before it served (exit code "
                                  f"{process.exitcode})") from None
    if not ready:
        raise OpenStrawberryError(f"the mock server did not start: {detail}")
    return str(detail)


def _serve(config: MockConfig, host: str, theirs: Connection) -> None:
    """The child: serve until the parent closes its end of the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal: the parent stops us
    with theirs:
        anyio.run(_serve_until_closed, config, host, theirs)


async def _serve_until_closed(config: MockConfig, host: str, theirs: Connection) -> None:
    async with AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(open_mock_server(config, host=host, port=0))
        except OSError as exc:
            _tell(theirs, (False, f"cannot serve on {host}: {exc.strerror or exc}"))
            return
        if _tell(theirs, (True, server.url)):
            await anyio.to_thread.run_sync(_until_end_of_file, theirs)


def _tell(theirs: Connection, message: tuple[bool, str]) -> bool:
    """Send ``message`` to the parent; False when it is gone already (it stopped while we started)."""
    try:
        theirs.send(message)
    except OSError:  # BrokenPipeError: the parent closed its end, our cue to stop
        return False
    return True


def _until_end_of_file(theirs: Connection) -> None:
    try:
        while True:
            theirs.recv()  # the parent sends nothing: this returns only at its end of file
    except (EOFError, OSError):
        return
