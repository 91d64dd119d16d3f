"""Runs with a reasoning model: each turn keeps its thinking beside its answer, the thinking goes
back as each API wants, and nothing but the answer is ever read as one."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from open_strawberry import ChatMessage
from open_strawberry.actors import Arbiter, ArbiterPolicy
from open_strawberry.actors.arbiter import extract_final_answer
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, DeltaCallback
from open_strawberry.backends.anthropic_messages import anthropic_body
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream, ReasoningDelta, TextDelta
from open_strawberry.grading.answers import last_number, without_thinking
from open_strawberry.messages import (
    Completion,
    Generated,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    Verdict,
    record_decoder,
)
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.reasoner import DECOY_ANSWER
from open_strawberry.pipeline import GenerateConfig, generate


def lines(path: str) -> list[bytes]:
    return Path(path).read_bytes().splitlines()


def read(path: str) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in lines(path)]


class Recording:
    """An Anthropic backend that keeps, per trace (its seed), every body it sent and every
    completion it got."""

    provider = "anthropic"

    def __init__(self, backend: AnthropicMessagesBackend) -> None:
        self.backend = backend
        self.model = backend.model
        self.bodies: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
        self.completions: dict[int | None, list[Completion]] = defaultdict(list)

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        self.bodies[request.seed].append(anthropic_body(request, self.model, prompt_cache=True, stream=stream))
        completion = await self.backend.complete(request, on_delta=on_delta, stream=stream)
        self.completions[request.seed].append(completion)
        return completion

    async def aclose(self) -> None:
        await self.backend.aclose()


async def test_an_anthropic_run_sends_every_earlier_thinking_block_back_unchanged(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(accuracy=1.0, thinking_redacted=True)) as server:
        recording = Recording(AnthropicMessagesBackend(base_url=server.url, model="claude"))
        # the default temperature gives way to the 1 Anthropic thinking needs: the mock refuses any other
        summary = await generate(problems="builtin:arithmetic:4", model=f"mock-anthropic:claude@{server.url}",
                                 out=str(tmp_path / "t.jsonl"), thinking_budget=1024, max_tokens=2048,
                                 final_every=2, backend=recording)
        await recording.aclose()
    records = read(summary.out)
    assert {r.status for r in records} == {"final"} and all(r.correct for r in records)
    assert all(len(r.turns) > 1 for r in records)
    for seed, bodies in recording.bodies.items():
        completions = recording.completions[seed]
        for k, body in enumerate(bodies):
            assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "temperature" not in body
            sent = [turn["content"] for turn in body["messages"] if turn["role"] == "assistant"]
            assert len(sent) == k
            for blocks, earlier in zip(sent, completions[:k], strict=True):
                assert blocks[:-1] == list(earlier.reasoning_blocks)  # signatures and all, unchanged
                assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]
    for record in records:
        for message in record.messages:
            if message.role == "assistant":
                assert message.reasoning_content and DECOY_ANSWER in message.reasoning_content
                assert DECOY_ANSWER not in message.content
                assert message.reasoning_blocks[0]["signature"]
        assert record.final_answer != DECOY_ANSWER
        assert all(turn.usage.reasoning_tokens for turn in record.turns)


@pytest.mark.parametrize("mode", ["reasoning", "think_tags", "think_tags_open"])
async def test_an_openai_compatible_run_records_thinking_apart_and_never_grades_it(tmp_path: Path, mode: str) -> None:
    events = EventStream()
    stream = events.subscribe(100_000)
    async with open_mock_server(MockConfig(thinking=mode, accuracy=1.0)) as server:
        summary = await generate(problems="builtin:arithmetic:4", model=f"llamacpp:m@{server.url}/v1",
                                 out=str(tmp_path / "t.jsonl"), final_every=2, events=events)
    received = []
    async with stream:
        async for event in stream:
            received.append(event)
    records = read(summary.out)
    assert {r.status for r in records} == {"final"} and all(r.correct for r in records)
    for record in records:
        assistant = [m for m in record.messages if m.role == "assistant"]
        assert len(assistant) > 1  # the decoy in the thinking never ended a trace
        assert all(m.reasoning_content and "think>" not in m.content for m in assistant)
        timings = record.turns[0].timings
        assert isinstance(timings.first_thinking_s, float) and isinstance(timings.first_answer_s, float)
    answers = "".join(e.text for e in received if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in received if isinstance(e, ReasoningDelta))
    if mode != "think_tags_open":  # without its opening tag, thinking streams as text (the record splits it)
        assert DECOY_ANSWER in thinking and DECOY_ANSWER not in answers and "think>" not in answers


async def test_thinking_tokens_count_against_the_trace_budget(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(thinking="reasoning_content", accuracy=1.0)) as server:
        url = f"llamacpp:m@{server.url}/v1"
        with_thinking = await generate(problems="builtin:arithmetic:2", model=url, out=str(tmp_path / "a.jsonl"),
                                       max_trace_tokens=400)
    for record in read(with_thinking.out):
        assert record.status == "budget"
        assert record.usage.output_tokens >= (record.usage.reasoning_tokens or 0) > 0


async def test_records_without_thinking_are_what_they_were(tmp_path: Path) -> None:
    async with open_mock_server() as server:
        summary = await generate(problems="builtin:arithmetic:2", model=f"mock:r@{server.url}/v1",
                                 out=str(tmp_path / "t.jsonl"))
    for line in lines(summary.out):
        raw = json.loads(line)
        assert all(set(m) == {"role", "content"} for m in raw["messages"])
        assert "reasoning_tokens" not in raw["usage"]
        for turn in raw["turns"]:
            assert "reasoning_tokens" not in turn["usage"] and "first_answer_s" not in turn["timings"]
            assert "first_thinking_s" not in turn["timings"]
        assert record_decoder.decode(line) == record_decoder.decode(msgspec.json.encode(raw))


@pytest.mark.parametrize(("options", "says"), [
    ({"thinking_budget": 512}, "at least 1024 tokens and below max_tokens (2048), got 512"),
    ({"thinking_budget": 2048}, "below max_tokens (2048), got 2048"),
    ({"thinking_budget": 1024, "temperature": 0.2}, "Anthropic thinking needs temperature 1, got 0.2"),
    ({"reasoning_effort": "high"}, "Anthropic models take thinking_budget")])
def test_impossible_anthropic_thinking_options_are_refused_before_any_call(options: dict[str, Any], says: str) -> None:
    config = GenerateConfig(problems="builtin:arithmetic:2", model="mock-anthropic:claude", max_tokens=2048,
                            **options)
    with pytest.raises(ConfigurationError) as info:
        config.check()
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_thinking_budget_is_refused_for_openai_compatible_servers() -> None:
    with pytest.raises(ConfigurationError, match="OpenAI-compatible servers take reasoning_effort"):
        GenerateConfig(problems="builtin:arithmetic:2", model="vllm:qwen", thinking_budget=2048,
                       max_tokens=4096).check()
    config = GenerateConfig(problems="builtin:arithmetic:2", model="mock-anthropic:c", thinking_budget=1024,
                            max_tokens=2048, temperature=1.0)
    config.check()
    assert config.sampling_temperature == 1.0


STATE = TraceState(trace_id="t", problem=Problem(id="p", prompt="What is 2 + 2?", answer="4"))


async def test_a_final_answer_in_the_thinking_is_not_an_answer() -> None:
    thought = Completion(text="Still working on it.", reasoning="Maybe <final_answer>5</final_answer>?")
    arbiter = Arbiter(ArbiterPolicy(max_turns=5))
    state = STATE.with_turn(thought.message(), TurnRecord(kind="first"))
    decision = await arbiter.handle(Generated(state=state, completion=thought))
    assert not isinstance(decision, Verdict)
    inline = "<think>Maybe <final_answer>5</final_answer>?</think>\nStill working."
    assert extract_final_answer(inline) is None
    assert extract_final_answer("Maybe <final_answer>5</final_answer>?</think> Done: <final_answer>4</final_answer>") \
        == "4"
    assert extract_final_answer("Maybe <final_answer>5</final_answer>? </think> No answer yet.") is None
    assert last_number("<think>it is 5</think>\nthe answer is 4") == 4
    assert without_thinking("<think>unclosed 5") == ""
    assert without_thinking("plain 4") == "plain 4"


def test_an_assistant_message_keeps_its_thinking_in_the_record() -> None:
    message = ChatMessage(role="assistant", content="4", reasoning_content="2 + 2",
                          reasoning_blocks=({"type": "thinking", "thinking": "2 + 2", "signature": "s"},))
    raw = json.loads(msgspec.json.encode(message))
    assert raw == {"role": "assistant", "content": "4", "reasoning_content": "2 + 2",
                   "reasoning_blocks": [{"type": "thinking", "thinking": "2 + 2", "signature": "s"}]}
    assert msgspec.json.decode(msgspec.json.encode(message), type=ChatMessage) == message


class _Capture:
    """A backend written before thinking: it only records what it was asked."""

    provider = "capture"
    model = "m"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        self.requests.append(request)
        return Completion(text="<critique>fine</critique><score>0.9</score>")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("show", [False, True])
async def test_the_verifier_is_shown_the_thinking_only_when_asked(show: bool) -> None:
    from open_strawberry.actors import Verifier
    from open_strawberry.messages import CritiqueRequest

    backend = _Capture()
    turn = ChatMessage(role="assistant", content="2 + 2 = 4.", reasoning_content="Adding two and two.")
    critique = await Verifier(backend, show_thinking=show).handle(
        CritiqueRequest(state=STATE.with_turn(turn, TurnRecord(kind="first"))))
    (request,) = backend.requests
    shown = request.messages[0].content
    assert "2 + 2 = 4." in shown and ("Adding two and two." in shown) == show
    assert critique.score == 0.9
