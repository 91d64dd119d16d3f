"""A shard's task body, run here without Ray: where it writes, what it returns, what it reports."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

from open_strawberry.distributed import shard_of
from open_strawberry.distributed.worker import DRIVER_MARKER, ShardTask, _run_shard
from open_strawberry.messages import record_decoder
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, Progress
from open_strawberry.problems.builtin import builtin_problems


class Method:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> None:
        self.calls.append(args)


class FakeCoordinator:
    """Stands in for the coordinator's Ray handle: ``report.remote(...)`` records the call."""

    def __init__(self) -> None:
        self.report = Method()


def task(tmp_path: Path, server: MockServer, **changes: Any) -> ShardTask:
    problems = tmp_path / "driver" / "problems.jsonl"
    config = GenerateConfig(problems=str(problems), model=f"mock:reasoner@{server.url}/v1", samples=2,
                            max_traces=4)
    fields: dict[str, Any] = {"run_id": "run1", "index": 1, "shards": 3, "config": config,
                              "run_dir": str(tmp_path / "driver" / "out.jsonl.shards" / "run1"),
                              "done": frozenset(), "budgets": {}, "problems_name": "problems.jsonl",
                              "progress_every_s": 0.01}
    return ShardTask(**{**fields, **changes})


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read(path: Path) -> bytes:
    """The file's bytes; nothing when it does not exist."""
    return path.read_bytes() if path.exists() else b""


def problems_bytes(count: int) -> bytes:
    return b"".join(msgspec.json.encode(p) + b"\n" for p in builtin_problems("mixed", count))


async def test_a_worker_on_the_drivers_disk_writes_its_shard_beside_the_traces_file(
        mock_server: MockServer, tmp_path: Path) -> None:
    shard = task(tmp_path, mock_server)
    run_dir = Path(shard.run_dir)
    write(run_dir / DRIVER_MARKER, b"run1\n")  # the driver's marker: this worker shares its disk
    write(Path(shard.config.problems), problems_bytes(10))
    done = next((p.id, 0) for p in builtin_problems("mixed", 10) if shard_of(p.id, 0, 3) == 1)
    shard = dataclasses.replace(shard, done=frozenset({done}))  # already in the traces file: not made again
    coordinator = FakeCoordinator()
    outcome = await _run_shard(shard, coordinator, None)
    assert outcome.data is None and Path(outcome.path).parent == run_dir
    made = [(r.problem_id, r.sample) for r in map(record_decoder.decode, read(Path(outcome.path)).splitlines())]
    expected = [(p.id, s) for p in builtin_problems("mixed", 10) for s in range(2) if shard_of(p.id, s, 3) == 1]
    assert sorted(made) == sorted(pair for pair in expected if pair != done)
    reports = coordinator.report.calls
    assert reports and all(index == 1 and isinstance(p, Progress) for index, p in reports)
    assert reports[-1][1].done == len(made)


async def test_a_worker_elsewhere_gets_the_problems_and_sends_its_file_back(
        mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "worker-tmp"))
    shard = task(tmp_path, mock_server)  # no run folder, no problems file: this "machine" sees neither
    outcome = await _run_shard(shard, FakeCoordinator(), problems_bytes(10))
    local = tmp_path / "worker-tmp" / "open-strawberry-shards" / "run1"
    assert Path(outcome.path).parent == local and read(Path(outcome.path)) == b""  # removed: the driver has it
    assert read(local / "problems.jsonl") == problems_bytes(10)
    assert outcome.data is not None
    made = [record_decoder.decode(line) for line in outcome.data.splitlines()]
    assert len(made) == outcome.summary.written > 0
    assert all(shard_of(r.problem_id, r.sample, 3) == 1 for r in made)
