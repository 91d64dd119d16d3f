"""A reasoning model for real: llama.cpp's ``llama-server`` making SmolLM2-135M-Instruct think
through the package's ChatML thinking template (the generation prompt ends in ``<think>``), with
``--reasoning-format deepseek --reasoning-budget N``: the server streams ``reasoning_content``,
then the answer in ``content``."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from open_strawberry.backends import ChatRequest, create_backend
from open_strawberry.limiter import create_limited_backend
from open_strawberry.messages import ChatMessage, TraceRecord
from open_strawberry.pipeline import generate
from open_strawberry.traces import export_sft, read_traces
from tests.real.servers import RealServer, easy_problems

pytestmark = pytest.mark.timeout(900)

RUN = {"max_tokens": 48, "max_turns": 2, "final_every": 1, "last_call": True, "answer_fallback": "last_number"}


def check_thinking_apart(records: list[TraceRecord]) -> None:
    """Every assistant turn keeps the thinking the server sent apart from its answer, its tokens
    counted, its first token timed before the answer's. (What the answer holds is the model's:
    SmolLM2 writes ``</think>`` and repeats its thinking in its answers at times; that the split
    is the server's own is shown by :func:`test_a_turn_is_split_exactly_as_the_server_splits_it`.)"""
    assert records and [r.error for r in records if r.status == "error"] == []
    replies = [(turn, message) for r in records
               for turn, message in zip(r.turns, [m for m in r.messages if m.role == "assistant"], strict=True)]
    thought = [(turn, message) for turn, message in replies if message.reasoning_content]
    # the template opens the thinking, so a turn without any is one the model closed at once
    assert len(thought) >= 0.9 * len(replies)
    for turn, _ in thought:
        assert (turn.usage.reasoning_tokens or 0) >= 1
        assert turn.usage.output_tokens >= (turn.usage.reasoning_tokens or 0)
        assert turn.timings.first_thinking_s is not None and turn.timings.first_thinking_s > 0
        if turn.timings.first_answer_s is not None:
            assert turn.timings.first_answer_s >= turn.timings.first_thinking_s
    # most turns answer after the budget closes the thinking (the model may also end inside it)
    assert sum(bool(message.content.strip()) for _, message in replies) >= 0.3 * len(replies)


async def test_verify_traces_record_each_turns_thinking_apart(llamacpp_thinking: RealServer, tmp_path: Path) -> None:
    with anyio.fail_after(800):
        summary = await generate(problems=str(easy_problems(tmp_path / "easy.jsonl")), model=llamacpp_thinking.model(),
                                 strategy="verify", samples=2, out=str(tmp_path / "t.jsonl"), **RUN)
    records = list(read_traces(summary.out))
    assert len(records) == 8
    check_thinking_apart(records)
    assert any(t.kind == "critique" for r in records for t in r.turns)


async def test_nudge_traces_record_thinking_apart_and_export_it(llamacpp_thinking: RealServer,
                                                               tmp_path: Path) -> None:
    with anyio.fail_after(800):
        summary = await generate(problems=str(easy_problems(tmp_path / "easy.jsonl")), model=llamacpp_thinking.model(),
                                 strategy="nudge", samples=6, verify_every=2, out=str(tmp_path / "t.jsonl"),
                                 grader="tests.real.servers:every_answer", **RUN)
    records = list(read_traces(summary.out))
    assert len(records) == 24
    check_thinking_apart(records)
    correct = [r for r in records if r.correct]
    assert correct, "no trace of 24 gave an answer: the export below has nothing to show"

    field = export_sft(summary.out, tmp_path / "field.jsonl", thinking="field")
    inline = export_sft(summary.out, tmp_path / "inline.jsonl", thinking="inline")
    assert field.written == inline.written == len(correct)
    rows = [json.loads(line) for line in (tmp_path / "field.jsonl").read_text().splitlines()]
    inline_rows = [json.loads(line) for line in (tmp_path / "inline.jsonl").read_text().splitlines()]
    for record, row, inline_row in zip(correct, rows, inline_rows, strict=True):  # in the file's order
        replies = [m for m in record.messages if m.role == "assistant"]
        exported = [m for m in row["messages"] if m["role"] == "assistant"]
        inlined = [m for m in inline_row["messages"] if m["role"] == "assistant"]
        for reply, message, inline_message in zip(replies, exported, inlined, strict=True):
            assert message["content"] == reply.content
            assert message.get("reasoning_content") == reply.reasoning_content
            assert "reasoning_content" not in inline_message
            if reply.reasoning_content:
                assert inline_message["content"] == f"<think>\n{reply.reasoning_content}\n</think>\n\n{reply.content}"


async def test_earlier_thinking_goes_back_where_llama_cpp_renders_it(llamacpp_thinking: RealServer) -> None:
    """The template renders an earlier turn's ``reasoning_content``: sent back (auto, for
    llama.cpp), it is in the prompt the server counts; dropped, it is not."""
    thinking = "Two and two: count two, then two more, which makes four in all. " * 3
    conversation = (ChatMessage(role="user", content="What is 2 + 2?"),
                    ChatMessage(role="assistant", content="4", reasoning_content=thinking),
                    ChatMessage(role="user", content="Are you sure?"))
    prompts = {}
    async with create_limited_backend(llamacpp_thinking.model()) as backend:  # retried as in a run
        for history in ("auto", "drop"):
            completion = await backend.complete(ChatRequest(messages=conversation, max_tokens=4, temperature=0.0,
                                                            reasoning_history=history))
            prompts[history] = completion.usage.input_tokens  # the server's count (thinking's is estimated)
    assert prompts["auto"] >= prompts["drop"] + 30  # the thinking is some 50 tokens


async def test_a_turn_is_split_exactly_as_the_server_splits_it(llamacpp_thinking: RealServer) -> None:
    """Streamed through our client, a greedy reply's thinking and answer are what the server
    itself returns for the same request unstreamed: nothing of one lands in the other."""
    import aiohttp

    request = ChatRequest(messages=(ChatMessage(role="user", content="What is 3 + 4?"),), max_tokens=40,
                          temperature=0.0, seed=7)
    async with create_backend(llamacpp_thinking.model()) as backend:  # type: ignore[attr-defined]
        completion = await backend.complete(request)
    body = {"messages": [{"role": "user", "content": "What is 3 + 4?"}], "max_tokens": 40, "temperature": 0.0,
            "seed": 7, "stream": False}
    async with aiohttp.ClientSession() as session, session.post(
            f"{llamacpp_thinking.url}/chat/completions", json=body) as response:
        message = (await response.json())["choices"][0]["message"]
    assert completion.reasoning and completion.reasoning.strip() == message["reasoning_content"].strip()
    assert completion.text.strip() == message["content"].strip()
