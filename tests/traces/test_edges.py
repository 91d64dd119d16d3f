"""Edges of the traces file and its statistics: a corrupt line in the middle of a file that a
run resumes, and pass@k asked for more samples than a problem has."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry import ChatMessage, ConfigurationError, Problem, TraceRecord, TraceState
from open_strawberry.messages import json_encoder
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.traces.files import finished_pairs
from open_strawberry.traces.stats import pass_at_k, trace_stats


def record(problem: str, sample: int, correct: bool | None = None) -> TraceRecord:
    state = TraceState(trace_id=f"{problem}-{sample}", problem=Problem(id=problem, prompt="p", answer="1"),
                       sample=sample, model="mock:m").with_message(ChatMessage(role="user", content="p"))
    return TraceRecord.from_state(state, status="final" if correct is not None else "max_turns",
                                  final_answer=None if correct is None else "1", correct=correct)


def line(problem: str, sample: int, correct: bool | None = None) -> bytes:
    return json_encoder.encode(record(problem, sample, correct)) + b"\n"


@pytest.mark.parametrize("corrupt", [b'{"problem_id": "b", "sam\n', b"\x00\x00\x00\n", b"not json at all\n"])
def test_a_corrupt_line_before_the_end_stops_resume_and_leaves_the_file(tmp_path: Path, corrupt: bytes) -> None:
    path = tmp_path / "traces.jsonl"
    content = line("a", 0) + corrupt + line("c", 0)
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=r"traces\.jsonl:2: not a trace record"):
        finished_pairs(path)
    assert path.read_bytes() == content  # neither skipped nor cut off: the user decides


async def test_generate_refuses_to_resume_a_file_with_a_corrupt_line(mock_server: MockServer, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    content = line("a", 0) + b"garbage\n" + line("c", 0)
    out.write_bytes(content)
    config = GenerateConfig(problems="builtin:mixed:4", model=f"mock:reasoner@{mock_server.openai_base_url}",
                            out=str(out))
    with pytest.raises(ConfigurationError, match=r"traces\.jsonl:2: not a trace record"):
        await generate(config)
    assert out.read_bytes() == content and mock_server.requests == 0


def test_pass_at_k_above_every_problems_samples_is_left_out_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(line("a", 0, True) + line("a", 1, False) + line("b", 0, False))
    stats = trace_stats(path, ks=(1, 2, 3))
    assert stats.pass_at[1] == pytest.approx((1 / 2 + 0) / 2)
    assert stats.pass_at[2] == pytest.approx(1.0)  # only problem a has two samples
    assert 3 not in stats.pass_at  # no problem has three samples: no figure rather than a wrong one
    with pytest.raises(ValueError, match="more than the 2 samples"):
        pass_at_k(2, 1, 3)
