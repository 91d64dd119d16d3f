"""Small actors and builders shared by the tests: a loop of N turns around a cycle; an aiohttp
app served on loopback with the package's one site starter; a command run as a child process
and stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from aiohttp import web

from open_strawberry import (
    Actor,
    ActorSpec,
    ChatMessage,
    Completion,
    Generated,
    GenerateRequest,
    NewTrace,
    NextTurn,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    Verdict,
)
from open_strawberry.runtime.sites import bind_listener, open_site


def new_traces(count: int, *, prefix: str = "t") -> list[NewTrace]:
    return [
        NewTrace(state=TraceState(trace_id=f"{prefix}{i}", problem=Problem(id=f"p{i}", prompt="q", answer="42")))
        for i in range(count)
    ]


class Prompter(Actor):
    inputs = (NewTrace, NextTurn)
    outputs = (GenerateRequest,)

    async def handle(self, message: NewTrace | NextTurn) -> GenerateRequest:
        state = message.state.with_message(ChatMessage(role="user", content="next?"))
        return GenerateRequest(state=state)


class Echo(Actor):
    """Answers every request; ``hook`` runs first (to block, count or raise)."""

    inputs = (GenerateRequest,)
    outputs = (Generated,)

    def __init__(self, hook: Callable[[GenerateRequest], Any] | None = None) -> None:
        self.hook = hook
        self.calls = 0

    async def handle(self, message: GenerateRequest) -> Generated:
        self.calls += 1
        if self.hook is not None:
            result = self.hook(message)
            if hasattr(result, "__await__"):
                await result
        reply = ChatMessage(role="assistant", content=f"step {len(message.state.turns) + 1}")
        state = message.state.with_turn(reply, TurnRecord(kind=message.kind))
        return Generated(state=state, completion=Completion(text=reply.content))


class Looper(Actor):
    """Sends a trace around the cycle until it has ``turns`` assistant turns."""

    inputs = (Generated,)
    outputs = (NextTurn, Verdict)

    def __init__(self, turns: int) -> None:
        self.turns = turns

    async def handle(self, message: Generated) -> NextTurn | Verdict:
        if len(message.state.turns) < self.turns:
            return NextTurn(state=message.state)
        return Verdict(state=message.state, status="final", final_answer="42")


class Finisher(Actor):
    inputs = (Verdict,)
    outputs = (TraceRecord,)

    async def handle(self, message: Verdict) -> TraceRecord:
        return TraceRecord.from_state(message.state, status=message.status, final_answer=message.final_answer,
                                      correct=message.final_answer == message.state.problem.answer)


class MemorySink(Actor):
    inputs = (TraceRecord,)
    outputs = ()

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.torn_down = False

    async def handle(self, message: TraceRecord) -> None:
        self.records.append(message)

    async def teardown(self) -> None:
        self.torn_down = True


def loop_specs(
    *,
    turns: int = 3,
    generator: Actor | None = None,
    sink: Actor | None = None,
    workers: int = 1,
    buffer: int | None = None,
    generator_buffer: int | None = None,
) -> list[ActorSpec]:
    """prompter -> generator -> looper (-> prompter | finisher) -> sink."""
    return [
        ActorSpec("prompter", Prompter(), workers=workers, buffer=buffer),
        ActorSpec("generator", generator or Echo(), workers=workers,
                  buffer=buffer if generator_buffer is None else generator_buffer),
        ActorSpec("looper", Looper(turns), workers=workers, buffer=buffer),
        ActorSpec("finisher", Finisher(), workers=workers, buffer=buffer),
        ActorSpec("sink", sink or MemorySink(), buffer=buffer),
    ]


def ids(records: Sequence[TraceRecord]) -> list[str]:
    return sorted(r.trace_id for r in records)


async def wait_until(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, checking each time every other task is blocked.

    Suits states that the run settles into (calls parked on a gate), not passing moments.
    """
    with anyio.fail_after(within):
        while not predicate():
            await anyio.wait_all_tasks_blocked()
            if not predicate():
                await anyio.lowlevel.checkpoint()




@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free port of 127.0.0.1 until the block ends; yields its URL (``http://host:port``)."""
    listener = await bind_listener("127.0.0.1", 0)
    with listener.sock:
        async with open_site(app, listener, shutdown_timeout=1.0):
            yield listener.url


@contextmanager
def child_process(command: Sequence[str | os.PathLike[str]], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """``command`` started as a child process, its stdout and stderr piped as text (``options``
    go to :class:`subprocess.Popen`); killed and reaped when the block ends while it still runs,
    so a failed assertion never leaves it behind."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def stop(process: subprocess.Popen[str], how: signal.Signals = signal.SIGINT, *, group: bool = False,
         timeout: float = 60.0) -> tuple[str, str]:
    """Ctrl-C (or the signal ``how``) to ``process``, or with ``group`` to its whole process group as
    a terminal sends it (start it with ``start_new_session=True``); then the rest of its stdout
    and stderr once it has exited. Blocks until then; ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds (the process is left running for :func:`child_process` to kill)."""
    if group:
        os.killpg(process.pid, how)
    else:
        process.send_signal(how)
    return process.communicate(timeout=timeout)


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (its children, theirs, ...), read from /proc."""
    parents: dict[int, int] = {}  # {pid: parent pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def gone(pid: int) -> bool:
    """Whether process ``pid`` (not necessarily our child) has exited; a zombie nobody reaped is
    gone too, in all but name."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
