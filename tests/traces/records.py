"""Trace records built by hand, for the tests of the commands on traces files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from open_strawberry import ChatMessage, Problem, TraceRecord, TraceState, TurnRecord, Usage
from open_strawberry.messages import json_encoder


def record(problem: str, sample: int, correct: bool | None, steps: Sequence[str]) -> TraceRecord:
    """A trace of ``problem`` with one assistant turn a step; graded ``correct`` (None: no final answer)."""
    state = TraceState(trace_id=f"{problem}-{sample}", problem=Problem(id=problem, prompt=f"Solve {problem}",
                                                                      answer="1"), sample=sample, model="mock:m")
    state = state.with_message(ChatMessage(role="system", content="Be careful."))
    state = state.with_message(ChatMessage(role="user", content=f"Solve {problem}"))
    for step in steps:
        state = state.with_turn(ChatMessage(role="assistant", content=step),
                                TurnRecord(kind="nudge", usage=Usage(input_tokens=10, output_tokens=5)))
        state = state.with_message(ChatMessage(role="user", content="Next step?"))
    status = "final" if correct is not None else "max_turns"
    return TraceRecord.from_state(state, status=status, final_answer=None if correct is None else "1",
                                  correct=correct)


def write(path: Path, records: Sequence[TraceRecord]) -> Path:
    path.write_bytes(b"".join(json_encoder.encode(r) + b"\n" for r in records))
    return path


def some_records() -> list[TraceRecord]:
    """Problems a (1 of 3 correct), b (2 of 2) and c (0 of 2)."""
    return [record("a", 0, True, ["s1"]), record("a", 1, False, ["s1", "s2"]), record("a", 2, None, ["s1", "s2", "s3"]),
            record("b", 0, True, ["s1"]), record("b", 1, True, ["s2"]), record("c", 0, False, ["s1"]),
            record("c", 1, False, ["s3"])]


def some_traces(path: Path) -> Path:
    """A small traces file of :func:`some_records`."""
    return write(path, some_records())
