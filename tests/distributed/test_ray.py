"""generate on a local Ray cluster against the mock server: the same traces as a local run, every
pair exactly once whoever is killed, and a budget that holds for the whole cluster."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from open_strawberry.distributed import generate_on_ray
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import TraceRecord, record_decoder
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary, generate

pytestmark = pytest.mark.ray


def read(path: str | Path) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in Path(path).read_bytes().splitlines()]


def outcomes(path: str | Path) -> dict[tuple[str, int], tuple[str, str, bool | None]]:
    """{pair: (trace id, status, correct)}, after checking that no pair is there twice."""
    records = read(path)
    found = {(r.problem_id, r.sample): (r.trace_id, r.status, r.correct) for r in records}
    assert len(found) == len(records), "a pair is in the traces file twice"
    return found


def config(server: MockServer, path: Path, **options: Any) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:mixed:30", "model": f"mock:reasoner@{server.url}/v1",
                             "out": str(path), "samples": 2, "max_traces": 16, **options})


async def test_a_sharded_run_makes_the_traces_a_local_run_makes(ray_address: str, tmp_path: Path) -> None:
    async with open_mock_server() as one, open_mock_server() as other:
        local = await generate(config(one, tmp_path / "local.jsonl"))
        served = one.requests
        spread = config(one, tmp_path / "ray.jsonl", model=f"mock:reasoner@{one.url}/v1,{other.url}/v1")
        progress: list[Progress] = []
        summary = await generate_on_ray(spread, workers=2, shards=3, on_progress=progress.append,
                                        progress_every_s=0.1)
        assert one.requests > served and other.requests > 0  # the shards went to both servers
    assert outcomes(summary.out) == outcomes(local.out)
    assert (summary.planned, summary.written, summary.resumed) == (60, 60, 0)
    assert (summary.correct, summary.graded, summary.statuses) == (local.correct, local.graded, local.statuses)
    assert progress[-1].done == progress[-1].total == 60 and progress[-1].turns > 60
    assert not (tmp_path / "ray.jsonl.shards").exists()
    manifest = json.loads((tmp_path / "ray.jsonl.manifest.json").read_text())
    assert manifest["ray"]["shards"] == 3 and manifest["summary"]["written"] == 60


def holders(out: Path) -> list[int]:
    """The process ids of the workers writing shard files now (each shard's lock names its holder)."""
    pids = []
    for lock in out.with_name(out.name + ".shards").glob("*/shard-*.jsonl.lock"):
        try:
            pids.append(int(lock.read_text().split(":")[0].removeprefix("pid ")))
        except (OSError, ValueError):
            continue  # released meanwhile
    return pids


async def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(ray_address: str, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    killed: list[int] = []
    async with open_mock_server(MockConfig(ttft_s=0.02)) as server:
        reference = await generate(config(server, tmp_path / "local.jsonl", problems="builtin:mixed:60"))
        calls_of_a_run = server.requests
        halfway = anyio.Event()

        def watch(progress: Progress) -> None:
            if progress.done >= 40:
                halfway.set()

        async with anyio.create_task_group() as tg:
            result: list[RunSummary] = []

            async def run() -> None:
                result.append(await generate_on_ray(config(server, out, problems="builtin:mixed:60", max_traces=8),
                                                    workers=2, on_progress=watch, progress_every_s=0.05))

            tg.start_soon(run)
            with anyio.fail_after(120):
                await halfway.wait()
            pids = holders(out)
            assert pids, "no shard was being written"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        extra_calls = server.requests - 2 * calls_of_a_run
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # it is dead: Ray ran its shard again
    assert outcomes(out) == outcomes(reference.out)
    assert result[0].written == 120
    # the new attempt resumed from the shard file: only the traces in flight (4 a worker) were made again
    assert extra_calls <= 4 * 12, f"{extra_calls} calls made again"


async def read_until(stream: Any, wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Read JSON log lines from ``stream`` until one satisfies ``wanted``."""
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"{") and wanted(json.loads(line)):
                return
    raise AssertionError("the driver ended before the log line came")


async def test_a_killed_driver_rerun_finishes_with_every_pair_once(ray_address: str, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(ttft_s=0.02)) as server:
        reference = await generate(config(server, tmp_path / "local.jsonl", problems="builtin:mixed:40"))
        command = [sys.executable, "-m", "open_strawberry.cli", "--log-json", "--log-level", "info", "generate",
                   "builtin:mixed:40", "--model", f"mock:reasoner@{server.url}/v1", "--out", str(out),
                   "--samples", "2", "--max-traces", "8", "--no-progress", "--ray", ray_address,
                   "--ray-workers", "1", "--ray-shards", "4"]
        async with await anyio.open_process(command) as driver:
            with anyio.fail_after(120):  # the first shard is merged, the second is being made: kill
                await read_until(driver.stderr, lambda line: line.get("event") == "shard_merged")
            driver.kill()
            await driver.wait()
        merged = outcomes(out)
        assert 0 < len(merged) < 80
        with anyio.fail_after(120):
            summary = await generate_on_ray(config(server, out, problems="builtin:mixed:40", max_traces=8),
                                            workers=2)
    assert outcomes(out) == outcomes(reference.out)
    # what the killed driver's shards left is merged by the rerun and counted as its own work
    assert summary.resumed == len(merged) and summary.resumed + summary.written == 80
    assert sum(summary.statuses.values()) == summary.written
    assert not out.with_name(out.name + ".shards").exists()


async def test_a_cluster_wide_rpm_budget_is_used_whole_without_429s(ray_address: str, tmp_path: Path) -> None:
    rpm, traces = 300, 360  # a burst of 300 (the budget starts full), then 60 more at 5 a second: 12 s
    async with open_mock_server(MockConfig(rpm=rpm)) as server:
        summary = await generate_on_ray(
            config(server, tmp_path / "traces.jsonl", problems=f"builtin:mixed:{traces // 2}", max_traces=256,
                   max_turns=1, rpm=rpm),
            workers=2)
        requests, rate_limited = server.requests, server.rate_limited
    records = read(summary.out)
    assert len(records) == traces and all(len(r.turns) == 1 for r in records)  # one call each
    # the budget allows `rpm` at once, then rpm/60 a second: the ideal run ends (traces - rpm) / (rpm / 60)
    # seconds after the first call; a run that wastes budget (held by one worker, split badly) takes longer
    ideal_s = (traces - rpm) / (rpm / 60)
    first_call = min(r.finished_at - r.turns[0].timings.e2e_s for r in records)
    took_s = max(r.finished_at for r in records) - first_call
    assert ideal_s / took_s >= 0.95, f"{ideal_s / took_s:.3f} of the budget"
    assert rate_limited <= 0.01 * requests, f"{rate_limited} of {requests} calls got a 429"


async def test_an_interrupted_driver_keeps_what_was_written_and_exits_130(ray_address: str, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(ttft_s=0.02)) as server:
        command = [sys.executable, "-m", "open_strawberry.cli", "--log-json", "--log-level", "info", "generate",
                   "builtin:mixed:40", "--model", f"mock:reasoner@{server.url}/v1", "--out", str(out),
                   "--samples", "2", "--max-traces", "8", "--no-progress", "--ray", ray_address,
                   "--ray-workers", "1", "--ray-shards", "4"]
        async with await anyio.open_process(command) as driver:
            with anyio.fail_after(120):
                await read_until(driver.stderr, lambda line: line.get("event") == "shard_merged")
                driver.send_signal(signal.SIGINT)
                assert await driver.wait() == 130
        kept = outcomes(out)  # every line whole, no pair twice
        assert 0 < len(kept) < 80
        assert not out.with_name(out.name + ".shards").exists()  # what the cancelled shard wrote is merged
        with anyio.fail_after(120):
            summary = await generate_on_ray(config(server, out, problems="builtin:mixed:40", max_traces=8),
                                            workers=2)
    assert (summary.resumed, summary.resumed + summary.written) == (len(kept), 80)
    assert len(outcomes(out)) == 80


async def test_an_error_in_a_shard_stops_the_run_with_its_message(ray_address: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)  # the workers do not have it either
    with pytest.raises(ConfigurationError, match="GROQ_API_KEY"), anyio.fail_after(120):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:4", model="groq:llama@http://127.0.0.1:9/v1",
                                             out=str(tmp_path / "traces.jsonl")), workers=2)
    assert not (tmp_path / "traces.jsonl.shards").exists()


LOCAL_CLUSTER = """
import json, anyio
from open_strawberry.distributed.cluster import cluster_target, open_cluster

async def main():
    async with open_cluster(cluster_target(None)) as ray:
        nodes = [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]]
        print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "nodes": nodes}))

anyio.run(main)
"""


async def test_with_no_address_the_driver_starts_its_own_cluster_on_loopback(ray_address: str) -> None:
    # another cluster runs on this machine (the session's): it is not joined, and the new one listens on
    # 127.0.0.1 although nothing in the environment asks for it
    env = {name: value for name, value in os.environ.items()
           if name not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    with anyio.fail_after(180):
        done = await anyio.run_process([sys.executable, "-c", LOCAL_CLUSTER], env=env)
    found = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert found["gcs"] != ray_address and found["gcs"].startswith("127.0.0.1:")
    assert found["nodes"] == ["127.0.0.1"]
