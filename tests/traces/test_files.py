"""The traces file between runs: resume cuts a torn last line, readers skip it, and a bad
line is an error that names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry import ChatMessage, ConfigurationError, Problem, TraceRecord, TraceState
from open_strawberry.messages import json_encoder
from open_strawberry.traces.files import finished_pairs, read_traces


def line(problem: str, sample: int) -> bytes:
    state = TraceState(trace_id=f"{problem}-{sample}", problem=Problem(id=problem, prompt="p", answer="1"),
                       sample=sample, model="mock:m").with_message(ChatMessage(role="user", content="p"))
    return json_encoder.encode(TraceRecord.from_state(state, status="final")) + b"\n"


def test_resume_cuts_off_a_torn_last_line_and_reports_what_is_done(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    whole = line("a", 0) + line("a", 1)
    path.write_bytes(whole + line("b", 0)[:30])
    assert finished_pairs(path) == {("a", 0), ("a", 1)}
    assert path.read_bytes() == whole


def test_reading_skips_a_torn_last_line_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    content = line("a", 0) + b"\n" + line("b", 0)[:30]
    path.write_bytes(content)
    assert [(r.problem_id, r.sample) for r in read_traces(path)] == [("a", 0)]
    assert path.read_bytes() == content


def test_a_bad_line_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(line("a", 0) + b'{"problem_id": "b"}\n')
    with pytest.raises(ConfigurationError, match=r"traces.jsonl:2: not a trace record \(.*\); move the file aside"):
        finished_pairs(path)
    with pytest.raises(ConfigurationError, match=r"traces.jsonl:2: not a trace record \("):
        list(read_traces(path))
    with pytest.raises(ConfigurationError, match=r"nope.jsonl: cannot read the traces file"):
        list(read_traces(tmp_path / "nope.jsonl"))
