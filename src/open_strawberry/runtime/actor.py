"""The :class:`Actor` base class and the :class:`Mailbox` each of its workers reads.

An actor declares the message types it accepts (``inputs``) and may send (``outputs``)
and implements :meth:`Actor.handle`: one message in, exactly one message out, because a
trace has one message in flight at a time. The runtime routes the returned message by
its type. The actor that accepts :class:`~open_strawberry.messages.TraceRecord` and sends
nothing is the *sink*: a trace ends when the sink has handled its record.

Actors hold no per-trace state; a pool of workers shares one actor instance and one
inbox. Override :meth:`Actor.run` only to change how a worker loops (batching, say);
whatever it does, messages it received and did not pass on are never lost: if the loop
dies they become failed records (or, in the sink, are handled again after the restart).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from open_strawberry.messages import Message, TraceRecord

if TYPE_CHECKING:
    from open_strawberry.runtime.system import ActorSystem, _Node

__all__ = ["Actor", "Mailbox", "queue_wait"]

_log = structlog.get_logger("open_strawberry.runtime")
_queue_wait: ContextVar[float] = ContextVar("open_strawberry_queue_wait", default=0.0)


def queue_wait() -> float:
    """Seconds the message being handled waited in this actor's inbox (enqueue to dequeue)."""
    return _queue_wait.get()


class Actor:
    """Base class of every actor.

    Subclasses set ``inputs`` and ``outputs`` (tuples of message types; on the class, or on
    the instance when they depend on its configuration) and implement :meth:`handle`.
    :meth:`setup` runs once before any worker starts (the actor is ready when it returns);
    :meth:`teardown` runs once after the last worker stopped, even on cancellation.
    """

    inputs: tuple[type[Any], ...] = ()
    outputs: tuple[type[Any], ...] = ()

    async def setup(self) -> None:
        """Acquire resources (files, sessions). Runs once, before the workers start."""

    async def teardown(self) -> None:
        """Release what :meth:`setup` acquired. Runs once, shielded from cancellation."""

    async def handle(self, message: Any) -> Message | None:
        """Handle one message and return the message that carries its trace onward.

        Only the sink returns ``None`` (the trace is finished). An exception raised here
        fails this trace alone: the runtime turns it into a failed ``TraceRecord`` for the
        sink and the worker goes on with the next message. Cancellation propagates.
        """
        raise NotImplementedError(f"{type(self).__name__}.handle")

    async def run(self, mailbox: Mailbox) -> None:
        """One worker's loop: handle each message until the inbox ends.

        Returning ends the worker for good; raising counts as a crash of the loop, and the
        runtime restarts it under the system's restart policy.
        """
        async for message in mailbox:
            try:
                result = await self.handle(message)
            except Exception as exc:
                await mailbox.fail(message, exc)
            else:
                await mailbox.forward(message, result)


class Mailbox:
    """One worker's view of its actor's inbox and outboxes.

    Iterating yields the next message (blocking while the inbox is empty, ending when
    every sender has closed it). Each message received is *held* until :meth:`forward` or
    :meth:`fail` passes its trace on; sending blocks while the target's inbox is full,
    which is how backpressure reaches upstream actors.
    """

    def __init__(
        self, node: _Node, inbox: anyio.abc.ObjectReceiveStream[tuple[float, Any]], system: ActorSystem
    ) -> None:
        self._node = node
        self._inbox = inbox
        self._system = system
        self.held: dict[str, Any] = {}  # {trace_id: message received and not yet passed on}
        self.redeliver: list[Any] = []  # sink only: records to handle again after a restart

    @property
    def actor_name(self) -> str:
        return self._node.name

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.redeliver:
            message = self.redeliver.pop(0)
        else:
            try:
                enqueued_at, message = await self._inbox.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None
            waited = time.perf_counter() - enqueued_at
            self._node.counters.dequeued(waited)
            _queue_wait.set(waited)
        trace_id = message.trace_id
        self.held[trace_id] = message
        self._node.counters.in_flight += 1
        structlog.contextvars.bind_contextvars(trace_id=trace_id)
        return message

    async def forward(self, message: Any, result: Message | None) -> None:
        """Pass ``message``'s trace on as ``result`` (``None``: the sink finished it)."""
        node = self._node
        if result is None:
            if not node.is_sink:
                error = TypeError(f"{type(node.actor).__name__}.handle returned None; only the sink may end a trace")
                await self.fail(message, error)
                return
            self._release(message)
            node.counters.handled += 1
            self._system._trace_finished(message)
            return
        target = node.routes.get(type(result))
        if target is None:
            error = TypeError(
                f"{type(node.actor).__name__}.handle returned a {type(result).__name__}, "
                f"which actor {node.name!r} has no route for"
            )
            await self.fail(message, error)
            return
        await target.put(node.sends[target.name], result)
        self._release(message)
        node.counters.handled += 1

    async def fail(self, message: Any, exc: BaseException) -> None:
        """End ``message``'s trace with a failed record naming ``exc`` and send it to the sink.

        In the sink itself there is nothing further to send to, so the error is raised
        again: the loop crashes and the record is handled again after the restart.
        """
        node = self._node
        if isinstance(message, TraceRecord):
            raise exc
        _log.warning("trace_failed", actor=node.name, error=f"{type(exc).__name__}: {exc}")
        record = TraceRecord.failed(message.state, exc, actor=node.name)
        sink = self._system._sink
        await sink.put(node.sends[sink.name], record)
        self._release(message)
        node.counters.failed += 1

    async def recover(self, exc: BaseException) -> None:
        """After the loop died of ``exc``: fail what it held (the sink keeps its records)."""
        held = list(self.held.values())
        for message in held:
            if isinstance(message, TraceRecord):
                self._release(message)
                self.redeliver.append(message)
            else:
                await self.fail(message, exc)

    def _release(self, message: Any) -> None:
        del self.held[message.trace_id]
        self._node.counters.in_flight -= 1
