"""SFT and DPO exports carry each turn's thinking where ``thinking`` says: TRL's
``reasoning_content`` key, inline ``<think>``, or nowhere; collapsed traces become one
``<think>…</think>`` + answer turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from open_strawberry import TraceRecord
from open_strawberry.traces.exports import export_dpo, export_sft
from tests.traces.records import record, some_traces, write


def thinking_record(problem: str, sample: int, correct: bool) -> TraceRecord:
    """A two-step trace whose turns each thought first."""
    plain = record(problem, sample, correct, ["Step one.", "So <final_answer>1</final_answer>"])
    messages = tuple(msgspec.structs.replace(m, reasoning_content=f"Thinking {i}.") if m.role == "assistant" else m
                     for i, m in enumerate(plain.messages))
    return msgspec.structs.replace(plain, messages=messages)


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assistants(row: dict[str, Any], key: str = "messages") -> list[dict[str, Any]]:
    return [m for m in row[key] if m["role"] == "assistant"]


def test_sft_rows_keep_thinking_in_the_reasoning_content_key(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [thinking_record("a", 0, True)])
    export_sft(traces, tmp_path / "sft.jsonl")
    (row,) = rows(tmp_path / "sft.jsonl")
    assert assistants(row) == [{"role": "assistant", "content": "Step one.", "reasoning_content": "Thinking 2."},
                               {"role": "assistant", "content": "So <final_answer>1</final_answer>",
                                "reasoning_content": "Thinking 4."}]


def test_sft_rows_put_thinking_inline_or_drop_it(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [thinking_record("a", 0, True)])
    export_sft(traces, tmp_path / "inline.jsonl", thinking="inline")
    export_sft(traces, tmp_path / "drop.jsonl", thinking="drop")
    (inline,) = rows(tmp_path / "inline.jsonl")
    (dropped,) = rows(tmp_path / "drop.jsonl")
    assert assistants(inline)[0] == {"role": "assistant", "content": "<think>\nThinking 2.\n</think>\n\nStep one."}
    assert assistants(dropped) == [{"role": "assistant", "content": "Step one."},
                                   {"role": "assistant", "content": "So <final_answer>1</final_answer>"}]
    assert [m["content"] for m in inline["messages"] if m["role"] != "assistant"] == \
        [m["content"] for m in dropped["messages"] if m["role"] != "assistant"]


@pytest.mark.parametrize("thinking", ["field", "inline"])
def test_a_collapsed_multi_turn_trace_is_one_think_and_answer_turn(tmp_path: Path, thinking: str) -> None:
    traces = write(tmp_path / "t.jsonl", [thinking_record("a", 0, True)])
    export_sft(traces, tmp_path / "sft.jsonl", format="collapsed", thinking=thinking)  # type: ignore[arg-type]
    (row,) = rows(tmp_path / "sft.jsonl")
    (turn,) = assistants(row)
    reasoning = "Thinking 2.\n\nStep one.\n\nThinking 4."
    answer = "So <final_answer>1</final_answer>"
    if thinking == "field":
        assert turn == {"role": "assistant", "content": answer, "reasoning_content": reasoning}
    else:
        assert turn == {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{answer}"}


def test_collapsed_traces_without_thinking_are_exported_as_before_unless_inline(tmp_path: Path) -> None:
    traces = some_traces(tmp_path / "t.jsonl")
    export_sft(traces, tmp_path / "field.jsonl", format="collapsed")
    export_sft(traces, tmp_path / "drop.jsonl", format="collapsed", thinking="drop")
    assert (tmp_path / "field.jsonl").read_bytes() == (tmp_path / "drop.jsonl").read_bytes()
    assert all(set(m) == {"role", "content"} for row in rows(tmp_path / "field.jsonl") for m in row["messages"])
    two_steps = write(tmp_path / "two.jsonl", [record("a", 0, True, ["Step one.", "Step two."])])
    export_sft(two_steps, tmp_path / "inline.jsonl", format="collapsed", thinking="inline")
    (row,) = rows(tmp_path / "inline.jsonl")
    assert assistants(row) == [{"role": "assistant", "content": "<think>\nStep one.\n</think>\n\nStep two."}]


@pytest.mark.parametrize(("thinking", "key"), [("field", "reasoning_content"), ("drop", None)])
def test_dpo_pairs_carry_thinking_as_asked(tmp_path: Path, thinking: str, key: str | None) -> None:
    traces = write(tmp_path / "t.jsonl", [thinking_record("a", 0, True), thinking_record("a", 1, False)])
    export_dpo(traces, tmp_path / "dpo.jsonl", thinking=thinking)  # type: ignore[arg-type]
    export_dpo(traces, tmp_path / "multi.jsonl", format="multi-turn", thinking=thinking)  # type: ignore[arg-type]
    (pair,) = rows(tmp_path / "dpo.jsonl")
    (multi,) = rows(tmp_path / "multi.jsonl")
    for side in ("chosen", "rejected"):
        (turn,) = pair[side]
        assert (key in turn) if key else set(turn) == {"role", "content"}
        assert all((key in m) == bool(key) for m in assistants(multi, side))
    assert all("reasoning_content" not in m for m in pair["prompt"])


def test_the_export_command_takes_thinking(tmp_path: Path) -> None:
    from open_strawberry.cli.main import main

    traces = write(tmp_path / "t.jsonl", [thinking_record("a", 0, True)])
    assert main(["export", "sft", str(traces), "--out", str(tmp_path / "o.jsonl"), "--thinking", "inline"]) == 0
    (row,) = rows(tmp_path / "o.jsonl")
    assert assistants(row)[0]["content"].startswith("<think>\n")
