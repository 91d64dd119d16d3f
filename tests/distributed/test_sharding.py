"""Shards: a stable hash of the pair, server lists, and generate(pairs=...) making one share."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from open_strawberry.distributed import shard_of, split_servers
from open_strawberry.distributed.sharding import server_for_shard
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import TraceRecord, record_decoder
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, generate


def read(path: str) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in Path(path).read_bytes().splitlines()]


def test_a_pair_has_the_same_shard_in_every_process() -> None:
    pairs = [(f"p{i}", sample) for i in range(50) for sample in range(3)]
    here = [shard_of(problem_id, sample, 7) for problem_id, sample in pairs]
    code = ("import sys; from open_strawberry.distributed.sharding import shard_of; "
            f"print([shard_of(p, s, 7) for p, s in {pairs!r}])")
    # a fresh interpreter has another string-hash seed: Python's hash() would differ
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert there.stdout.strip() == str(here)
    assert all(0 <= shard < 7 for shard in here)


def test_pairs_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"problem-{i}", sample, 4) for i in range(2500) for sample in range(4))
    assert sorted(counts) == [0, 1, 2, 3]
    assert max(counts.values()) / min(counts.values()) < 1.1


def test_a_model_with_several_servers_is_one_model_string_per_server() -> None:
    assert split_servers("vllm:qwen@http://a:8000/v1,http://b:8000/v1") == [
        "vllm:qwen@http://a:8000/v1", "vllm:qwen@http://b:8000/v1"]
    assert split_servers("ollama:llama3.1:8b") == ["ollama:llama3.1:8b"]
    assert split_servers("vllm:qwen@http://a:8000/v1") == ["vllm:qwen@http://a:8000/v1"]
    servers = split_servers("vllm:q@http://a:1/v1,http://b:2/v1,http://c:3/v1")
    assert [server_for_shard(servers, i).rpartition("@")[2] for i in range(5)] == [
        "http://a:1/v1", "http://b:2/v1", "http://c:3/v1", "http://a:1/v1", "http://b:2/v1"]


@pytest.mark.parametrize("model", ["vllm:qwen@http://a:8000/v1,", "vllm:qwen@http://a:8000/v1,http://:9/v1"])
def test_a_bad_server_in_the_list_is_named(model: str) -> None:
    with pytest.raises(ConfigurationError, match="server|empty"):
        split_servers(model)


async def test_shares_of_a_run_made_apart_add_up_to_the_run_once(mock_server: MockServer, tmp_path: Path) -> None:
    config = GenerateConfig(problems="builtin:mixed:10", model=f"mock:reasoner@{mock_server.url}/v1", samples=3,
                            max_traces=8)
    whole = await generate(config, out=str(tmp_path / "whole.jsonl"))
    parts = []
    for shard in range(3):
        summary = await generate(config, out=str(tmp_path / f"part{shard}.jsonl"),
                                 pairs=lambda problem_id, sample, shard=shard: shard_of(problem_id, sample, 3) == shard)
        assert summary.planned == summary.written
        parts += read(summary.out)
    expected = read(whole.out)
    assert sorted((r.problem_id, r.sample, r.trace_id, r.status, r.correct) for r in parts) == sorted(
        (r.problem_id, r.sample, r.trace_id, r.status, r.correct) for r in expected)
    assert len(parts) == 30
