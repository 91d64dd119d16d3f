"""The Generator: one LLM call per turn, through the backend (and its limiter)."""

from __future__ import annotations

import zlib

import msgspec
from msgspec import UNSET

from open_strawberry.backends.base import Backend, ChatRequest, DeltaCallback, Deltas, ReasoningHistory
from open_strawberry.errors import CallWithdrawnError
from open_strawberry.events import (
    WITHDRAWN,
    EventStream,
    ReasoningDelta,
    TextDelta,
    TraceFinished,
    TurnFinished,
    TurnStarted,
)
from open_strawberry.messages import Generated, GenerateRequest, TurnRecord
from open_strawberry.runtime.actor import Actor, queue_wait

__all__ = ["Generator", "call_seed"]


class Generator(Actor):
    """Asks ``backend`` for the next assistant turn of ``state.messages``.

    A system prompt, if the trace has one, is the first message of the conversation; the
    backend sends it the way its API wants. Each trace gets its own sampling seed, derived
    from ``seed`` and the trace id, so samples of one problem differ and a rerun repeats
    them. Run it as a pool: its calls wait on the backend's limiter, not on each other; a
    call that fails for good raises, and the runtime turns the trace into a failed record.
    With ``events``, it publishes each turn's start, its text deltas as they stream (a
    reasoning model's thinking as :class:`ReasoningDelta`, apart), and its end.

    Thinking: ``reasoning_effort`` and ``thinking_budget`` go into every request (see
    :class:`ChatRequest`), ``reasoning_history`` says whether earlier turns' thinking is sent
    back. The new assistant turn keeps its thinking beside its answer
    (:meth:`Completion.message`); a backend that knows no thinking gives none.
    """

    inputs = (GenerateRequest,)
    outputs = (Generated,)

    def __init__(self, backend: Backend, *, temperature: float | None = None, max_tokens: int = 1024,
                 seed: int = 0, stream: bool = True, events: EventStream | None = None,
                 reasoning_effort: str | None = None, thinking_budget: int | None = None,
                 reasoning_history: ReasoningHistory = "auto") -> None:
        self.backend = backend
        self.events = events
        self.seed = seed
        self.stream = stream
        # every request of the run is this one, with a trace's conversation and seed
        self.request = ChatRequest(messages=(), temperature=temperature, max_tokens=max_tokens,
                                   reasoning_effort=reasoning_effort, thinking_budget=thinking_budget,
                                   reasoning_history=reasoning_history)
        # OpenAI routes a request to a prompt cache by this key: each turn goes where its trace's prefix is
        self.cache_key = backend.provider == "openai"

    async def handle(self, message: GenerateRequest) -> Generated:
        state = message.state
        waited = queue_wait()
        request = msgspec.structs.replace(
            self.request, messages=state.messages, seed=call_seed(self.seed, state.trace_id),
            extra_body={"prompt_cache_key": state.trace_id} if self.cache_key else None)
        events = self.events if self.events is not None and self.events.has_subscribers else None
        turn = len(state.turns) + 1
        on_delta: DeltaCallback | None = None
        if events is not None:
            events.publish(TurnStarted(trace_id=state.trace_id, turn=turn, kind=message.kind))
            on_delta = _publisher(events, state.trace_id, turn)

        try:
            completion = await self.backend.complete(request, on_delta=on_delta, stream=self.stream)
        except CallWithdrawnError:  # the trace leaves unwritten: displays must not wait for it
            if events is not None:
                events.publish(TraceFinished(trace_id=state.trace_id, problem_id=state.problem.id,
                                             sample=state.sample, status=WITHDRAWN, correct=None,
                                             turns=len(state.turns)))
            raise
        timings = msgspec.structs.replace(completion.timings, queued_s=waited)
        if events is not None:
            events.publish(TurnFinished(trace_id=state.trace_id, turn=turn, usage=completion.usage, timings=timings,
                                        finish_reason=completion.finish_reason, text=completion.text,
                                        reasoning=completion.reasoning or None))
        asked = request.model or self.backend.model
        served = completion.model if completion.model and completion.model != asked else UNSET
        record = TurnRecord(kind=message.kind, usage=completion.usage, timings=timings,
                            finish_reason=completion.finish_reason, served_model=served)
        reply = completion.message()
        return Generated(state=state.with_turn(reply, record),
                         completion=msgspec.structs.replace(completion, timings=timings))


def call_seed(seed: int, key: str) -> int:
    """The sampling seed of one call: the run's ``seed`` varied by ``key`` (a trace id...), so
    that calls differ and a rerun repeats them."""
    return (seed + zlib.crc32(key.encode())) % 2**31


def _publisher(events: EventStream, trace_id: str, turn: int) -> Deltas:
    """The delta callback that publishes a turn's answer and thinking deltas apart."""
    return Deltas(lambda text: events.publish(TextDelta(trace_id=trace_id, turn=turn, text=text)),
                  lambda text: events.publish(ReasoningDelta(trace_id=trace_id, turn=turn, text=text)))
