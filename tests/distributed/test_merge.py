"""Shard files into the traces file: each pair once, a torn line left out, leftovers merged."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from open_strawberry.distributed import merge_shard, salvage_shards
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem, TraceRecord, TraceState, record_decoder
from open_strawberry.traces.files import finished_pairs, manifest_path
from open_strawberry.traces.lock import locked_traces_file


def line(problem_id: str, sample: int, status: str = "final") -> bytes:
    state = TraceState(trace_id=f"{problem_id}-{sample}", problem=Problem(id=problem_id, prompt="q", answer="1"),
                       sample=sample)
    return msgspec.json.encode(TraceRecord.from_state(state, status=status)) + b"\n"


def pairs(path: Path) -> list[tuple[str, int]]:
    return [(r.problem_id, r.sample) for r in map(record_decoder.decode, path.read_bytes().splitlines())]


def test_a_shard_adds_only_the_pairs_the_traces_file_lacks(tmp_path: Path) -> None:
    out, shard = tmp_path / "out.jsonl", tmp_path / "shard.jsonl"
    out.write_bytes(line("a", 0))
    shard.write_bytes(line("a", 0) + line("b", 0) + line("b", 1))
    manifest_path(shard).write_text("{}")
    done = finished_pairs(out)
    seen: list[TraceRecord] = []
    assert merge_shard(shard, out, done, observe=seen.append) == 2
    assert pairs(out) == [("a", 0), ("b", 0), ("b", 1)]
    assert [(r.problem_id, r.sample) for r in seen] == [("b", 0), ("b", 1)]
    assert done == {("a", 0), ("b", 0), ("b", 1)}
    assert not shard.exists() and not manifest_path(shard).exists()


def test_a_torn_last_line_of_a_killed_worker_is_left_out(tmp_path: Path) -> None:
    out, shard = tmp_path / "out.jsonl", tmp_path / "shard.jsonl"
    shard.write_bytes(line("a", 0) + line("b", 0)[:40])
    assert merge_shard(shard, out, set()) == 1
    assert pairs(out) == [("a", 0)]


def test_leftovers_of_a_killed_run_are_merged_once_and_their_folders_removed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    shards = tmp_path / "out.jsonl.shards"
    (shards / "run1").mkdir(parents=True)
    (shards / "run1" / "shard-0000-of-0002.jsonl").write_bytes(line("a", 0) + line("b", 0))
    (shards / "run1" / "shard-0001-of-0002.jsonl").write_bytes(line("c", 0) + line("a", 0))
    (shards / "run1" / ".driver").write_text("run1")
    out.write_bytes(line("b", 0))
    done = finished_pairs(out)
    assert salvage_shards(shards, out, done) == 2
    assert sorted(pairs(out)) == [("a", 0), ("b", 0), ("c", 0)]
    assert not shards.exists()
    assert salvage_shards(shards, out, done) == 0  # nothing left: a second salvage is a no-op


def test_a_shard_still_written_by_a_worker_is_waited_for_then_refused(tmp_path: Path) -> None:
    out, shard = tmp_path / "out.jsonl", tmp_path / "shard.jsonl"
    shard.write_bytes(line("a", 0))
    with locked_traces_file(shard), pytest.raises(ConfigurationError, match="being written by another run"):
        merge_shard(shard, out, set(), lock_wait_s=0.3)
    assert shard.exists()  # left for the next run
