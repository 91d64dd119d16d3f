"""A server that states its slots gets one trace in flight per slot (each turn comes back to
the slot that holds its conversation); a budget given by hand, or a server that states none,
leaves ``max_traces`` as it is. OpenAI gets each trace's id as its ``prompt_cache_key``."""

from __future__ import annotations

import pytest

from open_strawberry.actors import Generator
from open_strawberry.backends.base import ChatRequest
from open_strawberry.backends.capacity import ServerCapacity
from open_strawberry.messages import ChatMessage, Completion, GenerateRequest, Problem, TraceState
from open_strawberry.pipeline import GenerateConfig
from open_strawberry.pipeline.run import _traces_for_slots

STATED = ServerCapacity(4, "llama.cpp", "/props total_slots")


@pytest.mark.parametrize(
    ("capacity", "max_traces", "expected"),
    [
        (STATED, 256, 4),  # the default: one trace a slot
        (STATED, 2, 2),  # fewer traces asked for than slots: as asked
        (ServerCapacity(1, "llama-cpp-python", "serves one request at a time"), 256, 1),
        (ServerCapacity(None, "vLLM", "no slot count; adaptive concurrency"), 256, 256),  # nothing stated
        (None, 256, 256),  # a budget given by hand skips the probe: as before
    ],
)
def test_traces_in_flight_follow_the_slots_the_server_states(capacity: ServerCapacity | None, max_traces: int,
                                                             expected: int) -> None:
    config = GenerateConfig(problems="builtin:arithmetic:8", max_traces=max_traces)
    assert _traces_for_slots(config, capacity).max_traces == expected


class Recording:
    """A backend that answers "ok" and keeps the requests it was sent."""

    def __init__(self, provider: str) -> None:
        self.provider, self.model, self.requests = provider, "m", list[ChatRequest]()

    async def complete(self, request: ChatRequest, *, on_delta: object = None, stream: bool = True) -> Completion:
        self.requests.append(request)
        return Completion(text="ok")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("provider", "body"), [("openai", {"prompt_cache_key": "t1"}), ("vllm", None)])
async def test_openai_gets_the_trace_as_its_prompt_cache_key(provider: str, body: dict[str, str] | None) -> None:
    backend = Recording(provider)
    state = TraceState(trace_id="t1", problem=Problem(id="p", prompt="1+1?", answer="2"),
                       messages=(ChatMessage(role="user", content="1+1?"),))
    await Generator(backend).handle(GenerateRequest(state=state, kind="first"))
    assert [r.extra_body for r in backend.requests] == [body]
