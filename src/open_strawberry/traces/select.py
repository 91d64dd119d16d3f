"""Problem selection for the next bootstrap round: the problems a model can only barely do."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.jsonl import read_jsonl
from open_strawberry.messages import Problem, TraceRecord
from open_strawberry.traces.exports import ExportCounts
from open_strawberry.traces.files import read_traces, write_lines_atomically

__all__ = ["select_problems"]

_encoder = msgspec.json.Encoder()


class _Id(msgspec.Struct):
    id: str | None = None
    problem_id: str | None = None


_id_decoder = msgspec.json.Decoder(_Id)


def _excluded_ids(paths: Sequence[str | os.PathLike[str]]) -> set[str]:
    """The problem ids in problems or traces files (``id`` or ``problem_id`` on each line); a
    line with neither is an error naming it (the file is not what it was taken for)."""
    ids: set[str] = set()
    for path in paths:
        for line in read_jsonl(path, _id_decoder, kind="problems or traces file",
                               invalid="not a problem or trace record ({reason})"):
            found = [i for i in (line.value.id, line.value.problem_id) if i]
            if not found:
                raise ConfigurationError(f"{os.fspath(path)}:{line.number}: not a problem or trace record "
                                         "(no id or problem_id)")
            ids.update(found)
    return ids


def _problem(record: TraceRecord) -> Problem:
    """The problem ``record`` was a trace of, as its problems file gave it: the first user
    message is its prompt; its meta is kept."""
    meta = record.problem_meta if isinstance(record.problem_meta, dict) else {}
    return Problem(id=record.problem_id, prompt=next((m.content for m in record.messages if m.role == "user"), ""),
                   answer=record.ground_truth, grader=record.grader, meta=meta)


def select_problems(traces: str | os.PathLike[str], out: str | os.PathLike[str], *, min_pass: float = 0.0,
                    max_pass: float = 1.0, exclude: Sequence[str | os.PathLike[str]] = ()) -> ExportCounts:
    """Write, as a problems file, the problems whose pass rate lies in [min_pass, max_pass]
    (the ones the model can "barely" do), each with its id, prompt, answer, grader and meta as
    the traces recorded them, leaving out every id found in ``exclude`` (problems
    or traces files of earlier rounds). ``out`` is written whole or not at all, and never over
    ``traces`` or an ``exclude`` file (ConfigurationError)."""
    if not 0.0 <= min_pass <= max_pass <= 1.0:
        raise ConfigurationError(f"need 0 <= min_pass <= max_pass <= 1, got {min_pass} and {max_pass}")
    skip = _excluded_ids(exclude)
    seen: dict[str, tuple[int, int, Problem]] = {}  # {problem id: (samples, correct, problem)}
    counts = ExportCounts()
    for record in read_traces(traces):
        counts.read += 1
        samples, correct, problem = seen.get(record.problem_id) or (0, 0, _problem(record))
        seen[record.problem_id] = (samples + 1, correct + (record.correct is True), problem)
    counts.problems = len(seen)

    def lines() -> Iterator[bytes]:
        for problem_id, (samples, correct, problem) in seen.items():
            if problem_id in skip or not min_pass <= correct / samples <= max_pass:
                counts.skipped += 1
                continue
            yield _encoder.encode(problem) + b"\n"

    counts.written = write_lines_atomically(out, lines(), inputs=[traces, *exclude])
    return counts
