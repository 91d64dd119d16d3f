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
The one exception is a trace whose call was withdrawn before it was sent
(:class:`~open_strawberry.errors.CallWithdrawnError`: the run was interrupted while the call
waited in its limiter): it leaves the run without a record, so that a rerun makes it.

A :class:`Mailbox` knows nothing of the system that runs it: it is built from a
:class:`Wiring` (the sends, counters and callbacks of its actor), which the runtime
(:mod:`open_strawberry.runtime.system`) builds for each actor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import structlog

from open_strawberry.errors import CallWithdrawnError
from open_strawberry.messages import Message, TraceRecord
from open_strawberry.runtime.statistics import ActorCounters

__all__ = ["Actor", "Mailbox", "Send", "Wiring", "queue_wait"]

_log = structlog.get_logger("open_strawberry.runtime")
_queue_wait: ContextVar[float] = ContextVar("open_strawberry_queue_wait", default=0.0)
_now = time.perf_counter

Send = Callable[[Message], Awaitable[None]]
"""Puts a message into one actor's inbox; blocks while that inbox is full."""


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


@dataclass(frozen=True)
class Wiring:
    """What the workers of one actor send to, count in and report to: all a :class:`Mailbox`
    needs of the system that runs it. The runtime builds one per actor.

    Every send blocks while the receiving inbox is full (that is the backpressure) and
    raises what the channel raises once the receiver is gone.
    """

    name: str  # the actor's name, given to failed records and log lines
    actor: Actor
    counters: ActorCounters  # updated by the mailbox as messages come in and go on
    routes: Mapping[type[Any], Send]  # {output type: send into the inbox of the actor that takes it}
    to_sink: Send | None  # sends a failed record to the sink; None: this actor is the sink
    # called once the sink has handled a trace's record, or with None when a trace leaves unwritten
    # (its call was withdrawn before it was sent)
    trace_finished: Callable[[TraceRecord | None], None]

    @property
    def is_sink(self) -> bool:
        return self.to_sink is None


class Mailbox:
    """One worker's view of its actor's inbox and outboxes.

    Iterating yields the next message (blocking while the inbox is empty, ending when
    every sender has closed it). Each message received is *held* until :meth:`forward` or
    :meth:`fail` passes its trace on; sending blocks while the target's inbox is full,
    which is how backpressure reaches upstream actors.

    Receiving is a worker's one yield to the event loop per message (anyio's checkpoint,
    where cancellation arrives), so a busy actor cannot starve the others; passing the
    message on into an inbox with room does not yield a second time.

    Receiving a message binds its ``trace_id`` to the structlog context of the task that
    iterates; once the worker holds no message any more the context is reset to what it
    was before, so log lines between messages carry no trace id.
    """

    def __init__(self, inbox: anyio.abc.ObjectReceiveStream[tuple[float, Any]], wiring: Wiring) -> None:
        self._inbox = inbox
        self._wiring = wiring
        self._counters = wiring.counters
        self.held: dict[str, Any] = {}  # {trace_id: message received and not yet passed on}
        self.redeliver: list[Any] = []  # sink only: records to handle again after a restart
        self._trace_id_var = _structlog_var("trace_id")
        # From the bind made while nothing was held: resetting it restores the context
        # as it was before the first message the worker holds now.
        self._log_token: Token[Any] | None = None

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
            waited = _now() - enqueued_at
            self._counters.dequeued(waited)
            _queue_wait.set(waited)
        trace_id = message.trace_id
        token = self._trace_id_var.set(trace_id)  # structlog's bind_contextvars(trace_id=...)
        held = self.held
        if not held:
            self._log_token = token
        held[trace_id] = message
        self._counters.in_flight += 1
        return message

    async def forward(self, message: Any, result: Message | None) -> None:
        """Pass ``message``'s trace on as ``result`` (``None``: the sink finished it).

        Blocks while the inbox of the actor that takes ``result`` is full. A result this
        actor may not send (``None`` outside the sink, or a type it has no route for)
        fails the trace instead, as :meth:`fail` does.
        """
        wiring = self._wiring
        if result is None:
            if not wiring.is_sink:
                error = TypeError(f"{type(wiring.actor).__name__}.handle returned None; only the sink may end a trace")
                await self.fail(message, error)
                return
            self._release(message)
            self._counters.handled += 1
            wiring.trace_finished(message)
            return
        send = wiring.routes.get(type(result))
        if send is None:
            error = TypeError(
                f"{type(wiring.actor).__name__}.handle returned a {type(result).__name__}, "
                f"which actor {wiring.name!r} has no route for"
            )
            await self.fail(message, error)
            return
        await send(result)
        self._release(message)
        self._counters.handled += 1

    async def fail(self, message: Any, exc: BaseException) -> None:
        """End ``message``'s trace with a failed record naming ``exc`` and send it to the sink
        (a :class:`~open_strawberry.errors.CallWithdrawnError` ends it unwritten instead).

        Blocks while the sink's inbox is full. In the sink itself there is nothing further
        to send to, so the error is raised again: the loop crashes and the record is
        handled again after the restart.
        """
        wiring = self._wiring
        if isinstance(message, TraceRecord) or wiring.to_sink is None:
            raise exc
        if isinstance(exc, CallWithdrawnError):
            _log.info("trace_withdrawn", actor=wiring.name, trace_id=message.trace_id, reason=str(exc))
            self._release(message)
            wiring.trace_finished(None)
            return
        _log.warning("trace_failed", actor=wiring.name, trace_id=message.trace_id,
                     error=f"{type(exc).__name__}: {exc}")
        record = TraceRecord.failed(message.state, exc, actor=wiring.name)
        await wiring.to_sink(record)
        self._release(message)
        self._counters.failed += 1

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
        held = self.held
        del held[message.trace_id]
        self._counters.in_flight -= 1
        if not held and self._log_token is not None:
            token, self._log_token = self._log_token, None
            try:  # noqa: SIM105 - suppress() would cost a context manager per message
                self._trace_id_var.reset(token)
            except ValueError:
                # Bound in another task's context (a run() that receives in child tasks);
                # that binding ends with its task, and there is nothing of it here to reset.
                pass


def _structlog_var(key: str) -> ContextVar[Any]:
    """The context variable behind structlog's context-local ``key``.

    Setting it is what ``structlog.contextvars.bind_contextvars(key=...)`` does, and
    resetting its token what ``reset_contextvars`` does, without their per-call keyword
    dictionaries and name formatting (the mailbox binds once per message). Found through
    the token of one bind, reset at once.
    """
    token = structlog.contextvars.bind_contextvars(**{key: None})[key]
    token.var.reset(token)
    return token.var
