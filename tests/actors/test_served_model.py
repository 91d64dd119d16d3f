"""The model the server says answered is kept per turn, only when it is not the one asked for."""

from __future__ import annotations

from open_strawberry import ChatMessage, Completion, Problem, TraceState
from open_strawberry.actors import Generator
from open_strawberry.backends import ChatRequest
from open_strawberry.backends.base import DeltaCallback
from open_strawberry.messages import GenerateRequest, TraceRecord, json_encoder


class Answers:
    provider = "scripted"
    model = "gpt-4o-mini"

    def __init__(self, served: str | None) -> None:
        self.served = served

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        return Completion(text="42", model=self.served)

    async def aclose(self) -> None:
        pass


async def turn_of(served: str | None) -> bytes:
    state = TraceState(trace_id="t", problem=Problem(id="p", prompt="6 * 7?", answer="42"),
                       messages=(ChatMessage(role="user", content="6 * 7?"),))
    generated = await Generator(Answers(served)).handle(GenerateRequest(state=state, kind="first"))
    (turn,) = generated.state.turns
    assert json_encoder.encode(turn) in json_encoder.encode(TraceRecord.from_state(generated.state, status="final"))
    return json_encoder.encode(turn)


async def test_a_model_other_than_the_one_asked_for_is_recorded_per_turn() -> None:
    assert b'"served_model":"gpt-4o-mini-2024-07-18"' in await turn_of("gpt-4o-mini-2024-07-18")


async def test_the_model_asked_for_or_none_reported_leaves_the_record_as_it_was() -> None:
    assert b"served_model" not in await turn_of("gpt-4o-mini")
    assert b"served_model" not in await turn_of(None)
