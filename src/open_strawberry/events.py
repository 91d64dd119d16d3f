"""The event stream: what happens inside a run, as it happens, for displays and your own logic.

Events: :class:`TurnStarted`, :class:`TextDelta` (each streamed piece of a reply's answer),
:class:`ReasoningDelta` (each streamed piece of a reasoning model's thinking, published apart
from the answer's deltas and before them; backends that do not know thinking never send one),
:class:`TurnFinished` and :class:`TraceFinished` (with ``status`` :data:`WITHDRAWN` for a trace
that leaves unwritten because its call was withdrawn at an interrupt: a rerun makes it, and it
counts as no finished trace). Subscribe before the run starts::

    events = EventStream()
    async with events.subscribe() as stream:     # a bounded receive stream
        ... start generate(config, events=events) in a task ...
        async for event in stream:               # ends when the run closes the stream
            match event:
                case TextDelta(trace_id=t, text=text): ...

or listen: ``unlisten = events.listen(callback)`` calls ``callback(event)`` as each event is
published, in the publisher's task (it must be quick and must not block).

Publishing never blocks the pipeline: a subscriber whose buffer is full misses events
(counted in ``dropped``) rather than slowing the run down. A failed attempt's deltas may be
followed by the deltas of its retry; ``TurnFinished`` carries the final attempt only.

:class:`FanOut` is the one fan-out of the package: the event stream is one, and so are the
UI's per-page queues (:mod:`open_strawberry.ui.sse`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeAlias, TypeVar

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from open_strawberry.messages import Timings, Usage

__all__ = ["WITHDRAWN", "Event", "EventStream", "FanOut", "Queue", "ReasoningDelta", "TextDelta", "TraceFinished",
           "TurnFinished", "TurnStarted"]

T = TypeVar("T")

WITHDRAWN = "withdrawn"  # the status of a TraceFinished for a trace left unwritten (see the module)


class TurnStarted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    trace_id: str
    turn: int  # 1 for the first assistant turn
    kind: str  # the kind of prompt that asked for it


class TextDelta(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    trace_id: str
    turn: int
    text: str


class ReasoningDelta(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    trace_id: str
    turn: int
    text: str  # a piece of thinking, never part of the answer


class TurnFinished(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    trace_id: str
    turn: int
    usage: Usage
    timings: Timings
    finish_reason: str | None = None
    # the reply as recorded (None: not told); a retried call's deltas include the failed attempt's start
    text: str | None = None
    reasoning: str | None = None  # its thinking as recorded (None: none, or not told)


class TraceFinished(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    trace_id: str
    problem_id: str
    sample: int
    status: str
    correct: bool | None
    turns: int


Event: TypeAlias = TurnStarted | TextDelta | ReasoningDelta | TurnFinished | TraceFinished


class Queue(Generic[T]):
    """One reader's bounded queue, fed by a :class:`FanOut`: what does not fit is dropped and
    counted in ``dropped``, so the publisher never waits."""

    def __init__(self, buffer: int) -> None:
        self._send: MemoryObjectSendStream[T]
        self.receive: MemoryObjectReceiveStream[T]
        self._send, self.receive = anyio.create_memory_object_stream[T](buffer)
        self.dropped = 0

    def offer(self, item: T) -> bool:
        """Queue ``item`` without waiting; False once the reader has gone (the queue is dead)."""
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def close(self) -> None:
        """No more items: the reader's stream ends once it has read what is queued."""
        self._send.close()

    async def next_batch(self) -> list[T] | None:
        """Everything queued (waits for at least one item); None at the end."""
        try:
            pending = [await self.receive.receive()]
        except anyio.EndOfStream:
            return None
        while True:
            try:
                pending.append(self.receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                return pending

    def close_reader(self) -> None:
        self.receive.close()


class FanOut(Generic[T]):
    """Hands each item published to every listener, synchronously, in the order they came.

    A listener (:meth:`listen`) is a callback run in the publisher's task: quick, never
    blocking. A reader in another task takes a :class:`Queue` (:meth:`open`), bounded by
    ``buffer``: publishing never waits for it, and a queue whose reader has gone is dropped.
    :meth:`close` ends every queue and tells each listener; what is opened later is closed at once.
    """

    def __init__(self, buffer: int = 1024) -> None:
        self.buffer = buffer
        self._listeners: dict[int, tuple[Callable[[T], None], Callable[[], None] | None]] = {}
        self._next = 0
        self._queues: dict[Queue[T], Callable[[], None]] = {}  # {queue: its unlisten}
        self._dropped_by_gone = 0
        self.closed = False

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    @property
    def queues(self) -> int:
        return len(self._queues)

    @property
    def dropped(self) -> int:
        """Items the queues dropped, over the fan-out's life."""
        return self._dropped_by_gone + sum(queue.dropped for queue in self._queues)

    def listen(self, on_item: Callable[[T], None], on_close: Callable[[], None] | None = None) -> Callable[[], None]:
        """Call ``on_item`` with each item from now on, and ``on_close`` at :meth:`close`;
        returns the function that stops it. An exception ``on_item`` raises reaches the
        publisher: a listener that must never fail the run catches its own."""
        key = self._next
        self._next += 1
        self._listeners[key] = (on_item, on_close)

        def unlisten() -> None:
            self._listeners.pop(key, None)

        return unlisten

    def open(self, first: Iterable[T] = (), *, buffer: int | None = None) -> Queue[T]:
        """A new queue, holding ``first`` before anything published from now on."""
        first = list(first)
        queue = Queue[T](max(buffer or self.buffer, len(first) + 1))
        for item in first:
            queue.offer(item)
        if self.closed:
            queue.close()
            return queue

        def take(item: T) -> None:
            if not queue.offer(item):
                self.discard(queue)

        self._queues[queue] = self.listen(take, queue.close)
        return queue

    def discard(self, queue: Queue[T]) -> None:
        """Stop feeding ``queue`` and end it."""
        unlisten = self._queues.pop(queue, None)
        if unlisten is not None:
            unlisten()
            self._dropped_by_gone += queue.dropped
        queue.close()

    def publish(self, item: T) -> None:
        for on_item, _ in list(self._listeners.values()):
            on_item(item)

    def close(self, last: T | None = None) -> None:
        """Publish ``last`` (where it fits), then end every queue and tell every listener."""
        if last is not None:
            self.publish(last)
        self.closed = True
        listeners = list(self._listeners.values())
        self._listeners.clear()
        self._dropped_by_gone += sum(queue.dropped for queue in self._queues)
        self._queues.clear()
        for _, on_close in listeners:
            if on_close is not None:
                on_close()


class EventStream(FanOut[Event]):
    """The run's events, to every listener (:meth:`~FanOut.listen`, which returns the function
    that stops it) and subscriber (:meth:`subscribe`); :meth:`~FanOut.close` ends them all (the
    run is over). See the module docstring, and :class:`FanOut` for the rest."""

    @property
    def has_subscribers(self) -> bool:
        return self.listening

    def subscribe(self, buffer: int = 1024) -> MemoryObjectReceiveStream[Event]:
        """A receive stream of every event from now on; close it to unsubscribe."""
        return self.open(buffer=buffer).receive
