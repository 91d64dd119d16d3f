"""The Generator: one LLM call per turn, through the backend (and its limiter)."""

from __future__ import annotations

import zlib

import msgspec

from open_strawberry.backends.base import Backend, ChatRequest
from open_strawberry.events import EventStream, TextDelta, TurnFinished, TurnStarted
from open_strawberry.messages import ChatMessage, Generated, GenerateRequest, TurnRecord
from open_strawberry.runtime.actor import Actor, queue_wait

__all__ = ["Generator"]


class Generator(Actor):
    """Asks ``backend`` for the next assistant turn of ``state.messages``.

    A system prompt, if the trace has one, is the first message of the conversation; the
    backend sends it the way its API wants. Each trace gets its own sampling seed, derived
    from ``seed`` and the trace id, so samples of one problem differ and a rerun repeats
    them. Run it as a pool: its calls wait on the backend's limiter, not on each other; a
    call that fails for good raises, and the runtime turns the trace into a failed record.
    With ``events``, it publishes each turn's start, its text deltas as they stream, and its end.
    """

    inputs = (GenerateRequest,)
    outputs = (Generated,)

    def __init__(self, backend: Backend, *, temperature: float | None = None, max_tokens: int = 1024,
                 seed: int = 0, stream: bool = True, events: EventStream | None = None) -> None:
        self.backend = backend
        self.events = events
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.stream = stream

    async def handle(self, message: GenerateRequest) -> Generated:
        state = message.state
        waited = queue_wait()
        request = ChatRequest(
            messages=state.messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=(self.seed + zlib.crc32(state.trace_id.encode())) % 2**31,
        )
        events = self.events if self.events is not None and self.events.has_subscribers else None
        turn = len(state.turns) + 1
        on_delta = None
        if events is not None:
            events.publish(TurnStarted(trace_id=state.trace_id, turn=turn, kind=message.kind))

            def on_delta(text: str) -> None:
                events.publish(TextDelta(trace_id=state.trace_id, turn=turn, text=text))

        completion = await self.backend.complete(request, on_delta=on_delta, stream=self.stream)
        timings = msgspec.structs.replace(completion.timings, queued_s=waited)
        if events is not None:
            events.publish(TurnFinished(trace_id=state.trace_id, turn=turn, usage=completion.usage, timings=timings,
                                        finish_reason=completion.finish_reason, text=completion.text))
        record = TurnRecord(kind=message.kind, usage=completion.usage, timings=timings,
                            finish_reason=completion.finish_reason)
        reply = ChatMessage(role="assistant", content=completion.text)
        return Generated(state=state.with_turn(reply, record),
                         completion=msgspec.structs.replace(completion, timings=timings))
