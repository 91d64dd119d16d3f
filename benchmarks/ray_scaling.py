"""Ray benchmark: what running ``generate`` on Ray costs against the same run in one process,
and what the shared parts of the design can carry as the cluster grows.

    python benchmarks/ray_scaling.py [--traces 2000] [--turns 5] [--in-flight 64] [--latency-ms 100]
                                     [--rounds 2] [--json]

The mock server runs in a separate process and answers every streamed call after
``--latency-ms`` (the whole reply then follows at once), and never gives a final answer, so
every trace runs exactly ``--turns`` turns. Measured in one run, on a local Ray cluster that the
script starts (its start-up is reported apart), in alternating rounds (the best of each counts):

* **local**: ``generate()`` in this process, ``--in-flight`` traces and calls in flight;
* **ray, 1 worker** and **ray, 2 workers**: ``generate_on_ray()`` with the same options (the
  in-flight figures are for the whole run, split among the workers), from the call to the
  merged traces file: task scheduling, the workers' start, progress, merging included;
* **ray, 1 worker, shared budget**: the same with an RPM budget far above what the run uses,
  so every call goes through the budget leases without ever waiting for them.

Then the shared parts, measured alone: the coordinator actor's lease calls per second (one
caller), and the driver's merge rate (records per second from shard files into ``--out``).
Those bound the design as machines are added (see the README's "Beyond one machine").
Goal: the Ray run with one worker within 10% of the local run's time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.distributed import Coordinator, generate_on_ray, merge_shard
from open_strawberry.mock import MockConfig
from open_strawberry.pipeline import GenerateConfig, RunSummary, generate
from open_strawberry.problems.builtin import builtin_problems


def run_config(url: str, args: argparse.Namespace, problems: Path, out: Path) -> GenerateConfig:
    return GenerateConfig(problems=str(problems), model=f"mock:reasoner@{url}/v1", out=str(out),
                          max_traces=args.in_flight, max_concurrency=args.in_flight, max_turns=args.turns,
                          final_every=0, temperature=None, max_tokens=256)


async def timed(run: Any) -> tuple[float, RunSummary]:
    started = time.perf_counter()
    summary: RunSummary = await run()
    return time.perf_counter() - started, summary


def lease_rate(ray: Any, calls: int) -> float:
    """Lease calls per second that one caller gets from the coordinator actor, back to back."""
    coordinator = ray.remote(num_cpus=0)(Coordinator).remote({"requests": 1e9})
    ray.get(coordinator.lease.remote({"requests": 1.0}, "warm-up"))
    started = time.perf_counter()
    for _ in range(calls):
        ray.get(coordinator.lease.remote({"requests": 1.0}, "bench"))
    rate = calls / (time.perf_counter() - started)
    ray.kill(coordinator)
    return rate


def merge_rate(traces_file: Path, directory: Path) -> tuple[float, float]:
    """(records per second, MB per second) merging a copy of ``traces_file`` into an empty file."""
    shard = directory / "shard.jsonl"
    shard.write_bytes(traces_file.read_bytes())
    out = directory / "merged.jsonl"
    started = time.perf_counter()
    records = merge_shard(shard, out, set())
    elapsed = time.perf_counter() - started
    return records / elapsed, out.stat().st_size / 2**20 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local cluster on loopback only
    import ray

    mock = MockConfig(ttft_s=args.latency_ms / 1000, tokens_per_chunk=8, confident_after=1000)
    times: dict[str, list[float]] = {"local": [], "ray_1": [], "ray_2": [], "ray_1_budget": []}
    with mock_server_process(mock) as url, tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        problems = folder / "problems.jsonl"
        problems.write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in builtin_problems("mixed", args.traces)))
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        cluster_start_s = time.perf_counter() - started
        try:
            runs = {
                "local": lambda out: generate(run_config(url, args, problems, out)),
                "ray_1": lambda out: generate_on_ray(run_config(url, args, problems, out), workers=1),
                "ray_2": lambda out: generate_on_ray(run_config(url, args, problems, out), workers=2),
                "ray_1_budget": lambda out: generate_on_ray(run_config(url, args, problems, out), workers=1,
                                                            rpm=10_000_000),
            }
            for round_number in range(args.rounds):
                for name, run in runs.items():
                    out = folder / f"{name}-{round_number}.jsonl"
                    elapsed, summary = anyio.run(timed, lambda run=run, out=out: run(out))
                    assert summary.written == args.traces, (name, summary)
                    times[name].append(elapsed)
            leases_per_s = lease_rate(ray, 2000)
            merged_per_s, merged_mb_per_s = merge_rate(folder / "local-0.jsonl", folder)
            record_kb = (folder / "local-0.jsonl").stat().st_size / args.traces / 1024
        finally:
            ray.shutdown()

    best = {name: min(values) for name, values in times.items()}
    turns = args.traces * args.turns
    result = {
        "traces": args.traces, "turns_per_trace": args.turns, "in_flight": args.in_flight,
        "latency_ms": args.latency_ms, "rounds": args.rounds, "cpus": os.cpu_count(),
        "cluster_start_s": round(cluster_start_s, 2),
        "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "turns_per_s": {name: round(turns / value, 1) for name, value in best.items()},
        "ray_1_vs_local": round(best["ray_1"] / best["local"], 3),
        "ray_2_vs_local": round(best["ray_2"] / best["local"], 3),
        "ray_1_budget_vs_ray_1": round(best["ray_1_budget"] / best["ray_1"], 3),
        "coordinator_leases_per_s": round(leases_per_s),
        "merge_records_per_s": round(merged_per_s), "merge_mb_per_s": round(merged_mb_per_s, 1),
        "record_kb": round(record_kb, 2),
        "goal": {"ray_1_vs_local": 1.10},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.traces:,} traces x {args.turns} turns, {args.in_flight} in flight, {args.latency_ms:g} ms per call "
          f"(mock in a separate process), {os.cpu_count()} CPUs; Ray cluster start {cluster_start_s:.1f} s:")
    for name, label in (("local", "local"), ("ray_1", "ray, 1 worker"), ("ray_2", "ray, 2 workers"),
                        ("ray_1_budget", "ray, 1 worker, budget")):
        print(f"  {label:<22}: {best[name]:6.2f} s ({result['turns_per_s'][name]:>7} turns/s), rounds "
              f"{result['seconds'][name]}")
    print(f"  ray 1 worker / local  : {result['ray_1_vs_local']} (goal <= 1.10)")
    print(f"  ray 2 workers / local : {result['ray_2_vs_local']}")
    print(f"  budget leases         : {result['ray_1_budget_vs_ray_1']} of ray 1 worker's time")
    print(f"  coordinator           : {result['coordinator_leases_per_s']:,} lease calls/s (one caller)")
    print(f"  driver merge          : {result['merge_records_per_s']:,} records/s ({result['merge_mb_per_s']} MB/s, "
          f"{result['record_kb']} KB a record)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
