"""The event stream: what happens inside a run, as it happens, for displays and your own logic.

Events: :class:`TurnStarted`, :class:`TextDelta` (each streamed piece of a reply's answer),
:class:`ReasoningDelta` (each streamed piece of a reasoning model's thinking, published apart
from the answer's deltas and before them; backends that do not know thinking never send one),
:class:`TurnFinished` and :class:`TraceFinished`. Subscribe before the run starts::

    events = EventStream()
    async with events.subscribe() as stream:     # a bounded receive stream
        ... start generate(config, events=events) in a task ...
        async for event in stream:               # ends when the run closes the stream
            match event:
                case TextDelta(trace_id=t, text=text): ...

Publishing never blocks the pipeline: a subscriber whose buffer is full misses events
(counted in ``dropped``) rather than slowing the run down. A failed attempt's deltas may be
followed by the deltas of its retry; ``TurnFinished`` carries the final attempt only.
"""

from __future__ import annotations

from typing import TypeAlias

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from open_strawberry.messages import Timings, Usage

__all__ = ["Event", "EventStream", "ReasoningDelta", "TextDelta", "TraceFinished", "TurnFinished", "TurnStarted"]


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


class EventStream:
    """Fans events out to every subscriber; see the module docstring."""

    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[Event]] = []
        self.dropped = 0

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, buffer: int = 1024) -> MemoryObjectReceiveStream[Event]:
        """A receive stream of every event from now on; close it to unsubscribe."""
        send, receive = anyio.create_memory_object_stream[Event](buffer)
        self._subscribers.append(send)
        return receive

    def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                subscriber.close()
                self._subscribers.remove(subscriber)

    def close(self) -> None:
        """End every subscriber's stream (the run is over)."""
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
