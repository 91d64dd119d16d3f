"""Backends read a reasoning model's thinking in every form, streamed and not, apart from the
answer; requests turn it on and send it back as each API wants."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import msgspec
import openai
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import (
    AnthropicMessagesBackend,
    AnthropicSDKBackend,
    ChatRequest,
    OpenAIChatBackend,
    OpenAISDKBackend,
)
from open_strawberry.backends.anthropic_messages import anthropic_body
from open_strawberry.backends.base import Deltas
from open_strawberry.backends.openai_chat import merge_reasoning_details, openai_body
from open_strawberry.backends.reply import ThinkSplitter, split_inline_think
from open_strawberry.backends.tokens import count_tokens
from open_strawberry.messages import Completion, Usage, json_encoder
from open_strawberry.mock import MockConfig, Reasoner, open_mock_server
from open_strawberry.mock.reasoner import DECOY_ANSWER

QUESTION = "What is 6 * 7 + 1?"
REQUEST = ChatRequest(messages=(ChatMessage(role="user", content=QUESTION),), seed=1)
FIELD_MODES = ["reasoning", "reasoning_content", "both", "reasoning_details"]
INLINE_MODES = ["think_tags", "think_tags_open"]


def expected_thinking() -> str:
    return Reasoner().thinking([("user", QUESTION)])


def expected_answer() -> str:
    return Reasoner().reply("", [("user", QUESTION)], 1)


class Collected:
    """A Deltas that keeps what it was given."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.deltas = Deltas(self.text.append, self.thinking.append)


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("mode", FIELD_MODES + INLINE_MODES)
async def test_the_openai_client_keeps_thinking_apart_in_every_form(mode: str, stream: bool) -> None:
    collected = Collected()
    async with open_mock_server(MockConfig(thinking=mode, tokens_per_chunk=2)) as server, \
            OpenAIChatBackend(base_url=server.openai_base_url, model="m", provider="llamacpp") as backend:
        completion = await backend.complete(REQUEST, on_delta=collected.deltas, stream=stream)
    assert completion.text == expected_answer()
    assert completion.reasoning == expected_thinking()
    assert DECOY_ANSWER not in completion.text
    if mode == "think_tags_open" and stream:  # no opening tag: it streams as text, the completion splits it
        assert "".join(collected.text).endswith(expected_answer()) and collected.thinking == []
    else:
        assert "".join(collected.text) == expected_answer()
        assert "".join(collected.thinking).strip() == expected_thinking()
    assert completion.usage.reasoning_tokens == count_tokens(expected_thinking())
    assert completion.usage.output_tokens == count_tokens(expected_thinking()) + count_tokens(expected_answer())
    timings = completion.timings
    assert isinstance(timings.first_thinking_s, float) and isinstance(timings.first_answer_s, float)
    if stream:
        assert timings.ttft_s == timings.first_thinking_s <= timings.first_answer_s
    if mode == "reasoning_details":  # OpenRouter's details are kept whole, signature included
        (detail,) = completion.reasoning_blocks
        assert detail["type"] == "reasoning.text" and detail["text"] == expected_thinking() and detail["signature"]
    else:
        assert completion.reasoning_blocks == ()


@pytest.mark.parametrize("stream", [True, False])
async def test_llamacpp_servers_count_no_reasoning_tokens_so_they_are_estimated(stream: bool) -> None:
    config = MockConfig(thinking="reasoning_content", flavor="llamacpp")
    async with open_mock_server(config) as server, \
            OpenAIChatBackend(base_url=server.openai_base_url, model="m") as backend:
        completion = await backend.complete(REQUEST, stream=stream)
    assert completion.reasoning == expected_thinking()
    if stream:  # llama.cpp's timings give the output tokens, thinking included, but no split
        assert completion.usage.estimated
        assert completion.usage.reasoning_tokens == count_tokens(expected_thinking())


async def test_a_reply_without_thinking_is_recorded_as_before() -> None:
    async with open_mock_server() as server, \
            OpenAIChatBackend(base_url=server.openai_base_url, model="m") as backend:
        completion = await backend.complete(REQUEST)
    assert completion.reasoning == "" and completion.reasoning_blocks == ()
    assert completion.usage.reasoning_tokens is msgspec.UNSET
    assert completion.timings.first_answer_s is msgspec.UNSET
    record = json.loads(json_encoder.encode(completion.message()))
    assert record == {"role": "assistant", "content": completion.text}
    assert set(json.loads(json_encoder.encode(completion.usage))) == set(Usage.__struct_fields__) - {
        "reasoning_tokens", "batch_input_tokens", "batch_output_tokens"}  # and without --batch's keys
    assert "first_answer_s" not in json.loads(json_encoder.encode(completion.timings))


async def test_reasoning_effort_none_turns_the_mock_thinking_off_and_is_sent() -> None:
    async with open_mock_server(MockConfig(thinking="reasoning")) as server, \
            OpenAIChatBackend(base_url=server.openai_base_url, model="m") as backend:
        off = await backend.complete(msgspec.structs.replace(REQUEST, reasoning_effort="none"))
        on = await backend.complete(msgspec.structs.replace(REQUEST, reasoning_effort="high"))
    assert off.reasoning == "" and on.reasoning == expected_thinking()
    assert openai_body(msgspec.structs.replace(REQUEST, reasoning_effort="low"), "m", "vllm",
                       stream=False)["reasoning_effort"] == "low"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("redacted", [False, True])
async def test_the_anthropic_client_keeps_thinking_blocks_with_their_signatures(stream: bool, redacted: bool) -> None:
    request = msgspec.structs.replace(REQUEST, thinking_budget=1024, max_tokens=2048)
    collected = Collected()
    async with open_mock_server(MockConfig(thinking_redacted=redacted)) as server, \
            AnthropicMessagesBackend(base_url=server.url, model="claude") as backend:
        completion = await backend.complete(request, on_delta=collected.deltas, stream=stream)
    assert completion.text == expected_answer() == "".join(collected.text)
    assert completion.reasoning == expected_thinking() == "".join(collected.thinking)
    kinds = [block["type"] for block in completion.reasoning_blocks]
    assert kinds == (["thinking", "redacted_thinking"] if redacted else ["thinking"])
    thinking = completion.reasoning_blocks[0]
    assert thinking["thinking"] == expected_thinking() and thinking["signature"]
    assert completion.usage.reasoning_tokens == count_tokens(expected_thinking())
    assert completion.usage.estimated  # Anthropic does not count thinking apart: ours is an estimate


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("mode", ["reasoning", "reasoning_content", "reasoning_details", "think_tags_open"])
async def test_the_openai_sdk_adapter_reads_thinking(mode: str, stream: bool) -> None:
    async with open_mock_server(MockConfig(thinking=mode)) as server, \
            openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="x") as client:
        completion = await OpenAISDKBackend(client, "m").complete(REQUEST, stream=stream)
    assert completion.text == expected_answer()
    assert completion.reasoning == expected_thinking()
    assert completion.usage.reasoning_tokens == count_tokens(expected_thinking())


@pytest.mark.parametrize("stream", [True, False])
async def test_the_anthropic_sdk_adapter_reads_thinking_blocks(stream: bool) -> None:
    request = msgspec.structs.replace(REQUEST, thinking_budget=1024, max_tokens=2048)
    async with open_mock_server(MockConfig(thinking_redacted=True)) as server, \
            anthropic.AsyncAnthropic(base_url=server.url, api_key="x") as client:
        adapter = AnthropicSDKBackend(client, "claude")
        first = await adapter.complete(request, stream=stream)
        # the blocks go back unmodified: the mock checks their signatures
        history = (*request.messages, first.message(), ChatMessage(role="user", content="Go on."))
        second = await adapter.complete(msgspec.structs.replace(request, messages=history), stream=stream)
    assert first.text == expected_answer() and first.reasoning == expected_thinking()
    assert [block["type"] for block in first.reasoning_blocks] == ["thinking", "redacted_thinking"]
    assert first.finish_reason == "stop" and second.reasoning


def test_the_think_splitter_takes_tags_cut_anywhere() -> None:
    reply = "  <think>\nI ponder <b> and </thi no.\n</think>\n\nThe answer is 43."
    for cut in range(len(reply) + 1):
        for size in (1, 2, 3):
            pieces = [reply[:cut]] + [reply[i:i + size] for i in range(cut, len(reply), size)]
            splitter = ThinkSplitter()
            parts = [part for piece in pieces for part in splitter.feed(piece)] + splitter.close()
            thinking = "".join(text for is_thinking, text in parts if is_thinking)
            answer = "".join(text for is_thinking, text in parts if not is_thinking)
            assert (thinking, answer) == ("\nI ponder <b> and </thi no.\n", "The answer is 43."), (cut, size)


def test_inline_thinking_is_split_with_or_without_its_opening_tag() -> None:
    assert split_inline_think("<think>a</think>\n\nb") == ("a", "b")
    assert split_inline_think("a <final_answer>1</final_answer></think>b") == ("a <final_answer>1</final_answer>", "b")
    assert split_inline_think("just an answer") == ("", "just an answer")
    assert split_inline_think("<think>cut off before the end") == ("cut off before the end", "")
    assert split_inline_think("He wrote <think>x</think> here") == ("", "He wrote <think>x</think> here")


def test_openrouter_details_streamed_in_pieces_are_joined() -> None:
    pieces = [{"type": "reasoning.text", "text": "Hel", "index": 0},
              {"type": "reasoning.text", "text": "lo", "index": 0},
              {"type": "reasoning.text", "text": "", "index": 0, "signature": "sig"},
              {"type": "reasoning.encrypted", "data": "xyz", "index": 1}]
    assert merge_reasoning_details(pieces) == (
        {"type": "reasoning.text", "text": "Hello", "index": 0, "signature": "sig"},
        {"type": "reasoning.encrypted", "data": "xyz", "index": 1})


ASSISTANT = ChatMessage(role="assistant", content="Step one.", reasoning_content="I think.",
                        reasoning_blocks=({"type": "thinking", "thinking": "I think.", "signature": "s1"},
                                          {"type": "redacted_thinking", "data": "d1"}))
HISTORY = ChatRequest(messages=(ChatMessage(role="user", content="Q"), ASSISTANT,
                                ChatMessage(role="user", content="Go on.")))


def _assistant(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = body["messages"][1]
    return message


@pytest.mark.parametrize(("provider", "history", "field"), [
    ("llamacpp", "auto", "reasoning_content"), ("vllm", "auto", "reasoning"), ("sglang", "auto", "reasoning_content"),
    ("ollama", "auto", "reasoning"), ("openai", "auto", None), ("groq", "auto", None),
    ("openai", "keep", "reasoning_content"), ("vllm", "keep", "reasoning"), ("vllm", "drop", None),
    ("llamacpp", "drop", None)])
def test_openai_compatible_servers_get_thinking_back_in_their_field_never_in_content(
        provider: str, history: str, field: str | None) -> None:
    request = msgspec.structs.replace(HISTORY, reasoning_history=history)
    message = _assistant(openai_body(request, "m", provider, stream=True))
    assert message["content"] == "Step one."
    fields = {key for key in message if key.startswith("reasoning")} - {"reasoning_details"}
    assert fields == ({field} if field else set())
    if field:
        assert message[field] == "I think."


def test_anthropic_gets_its_thinking_blocks_back_unmodified_before_the_text() -> None:
    body = anthropic_body(msgspec.structs.replace(HISTORY, thinking_budget=2048, max_tokens=4096), "claude",
                          prompt_cache=True, stream=True)
    assert _assistant(body)["content"] == [*ASSISTANT.reasoning_blocks, {"type": "text", "text": "Step one."}]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    dropped = anthropic_body(msgspec.structs.replace(HISTORY, reasoning_history="drop"), "claude",
                             prompt_cache=False, stream=False)
    assert _assistant(dropped)["content"] == [{"type": "text", "text": "Step one."}]
    assert "thinking" not in dropped


def test_a_backend_that_knows_no_thinking_still_takes_a_deltas_callback() -> None:
    collected = Collected()

    class Plain:  # a user's backend written before thinking: it calls on_delta(text)
        def complete(self, on_delta: Any) -> Completion:
            on_delta("hello")
            return Completion(text="hello")

    assert Plain().complete(collected.deltas).text == "hello"
    assert collected.text == ["hello"] and collected.thinking == []
