"""Pipeline benchmark: how close ``generate`` comes to the ideal rate and to a bare loop.

    python benchmarks/pipeline.py [--traces 10000] [--turns 5] [--in-flight 256] [--latency-ms 200]
                                  [--rounds 2] [--json]

The mock server runs in a separate process and answers every streamed call after
``--latency-ms`` (the whole reply then follows at once, in chunks of 8 tokens), and never
gives a final answer, so every trace runs exactly ``--turns`` turns. Compared, in the same run:

* **pipeline**: ``generate()`` (Prompter, Generator pool, Arbiter, Grader, JSONL sink, limiter)
  with ``--in-flight`` traces and calls in flight;
* **bare loop**: ``--in-flight`` tasks, each making a trace's calls one after the other with
  a bare ``aiohttp`` session (the conversation grows the same way), no actors, no file.

Every run starts from scratch: a fresh mock server process and a fresh client process (so
neither side finds a server or a process warmed up by the other, and each has its own peak
RSS). Rounds alternate which side goes first (round 1: bare then pipeline; round 2: pipeline
then bare; ...), so that a drift in the machine's load does not always favour the same side.
Both read the same problems file, written before anything is timed.

Reported: turns per second of every run, the spread (min-max) of each side, the pipeline's
rate as a fraction of the ideal (in flight / latency) and of the bare loop (per round, and
best against best), and each side's peak RSS. Goal: at least 0.9 of both, under 1 GB. On a
small machine the mock server shares the CPU with the client; the bare loop shows what the
machine allows.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.messages import Problem
from open_strawberry.mock import MockConfig
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.prompting.prompts import NUDGES, SYSTEM_PROMPTS


def mock_config(latency_ms: float) -> MockConfig:
    """Answers after ``latency_ms``, 8 tokens a chunk, never a final answer (every trace runs all turns)."""
    return MockConfig(ttft_s=latency_ms / 1000, tokens_per_chunk=8, confident_after=1000)


async def run_pipeline(url: str, args: argparse.Namespace, problems: Path) -> float:
    out = problems.with_name(f"traces-{time.time_ns()}.jsonl")
    config = GenerateConfig(problems=str(problems), model=f"mock:reasoner@{url}/v1", out=str(out),
                            max_traces=args.in_flight, max_concurrency=args.in_flight, max_turns=args.turns,
                            final_every=0, temperature=None, max_tokens=256)
    summary = await generate(config)
    assert summary.written == args.traces, summary
    return float(summary.written * args.turns / summary.elapsed_s)


async def run_bare(url: str, args: argparse.Namespace, problems: Path) -> float:
    raw = await anyio.Path(problems).read_bytes()
    problem_list = [msgspec.json.decode(line, type=Problem) for line in raw.splitlines()]
    pending = iter(problem_list)
    system = next(iter(SYSTEM_PROMPTS.values()))
    decoder = msgspec.json.Decoder()
    turns = 0

    async def trace(session: aiohttp.ClientSession, prompt: str, index: int) -> None:
        nonlocal turns
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        for turn in range(args.turns):
            body = {"model": "reasoner", "messages": messages, "stream": True, "max_tokens": 256,
                    "stream_options": {"include_usage": True}, "seed": index}
            parts = []
            async with session.post(f"{url}/v1/chat/completions", data=msgspec.json.encode(body)) as response:
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.startswith(b"data: {"):
                            for choice in decoder.decode(line[6:]).get("choices", ()):
                                if content := choice["delta"].get("content"):
                                    parts.append(content)
            messages += [{"role": "assistant", "content": "".join(parts)},
                         {"role": "user", "content": NUDGES[turn % len(NUDGES)]}]
            turns += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        for index, problem in enumerate(pending):
            await trace(session, problem.prompt, index)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=args.in_flight)
    async with aiohttp.ClientSession(connector=connector) as session, anyio.create_task_group() as tg:
        for _ in range(args.in_flight):
            tg.start_soon(worker, session)
    return turns / (time.perf_counter() - started)


def one_side(args: argparse.Namespace) -> None:
    """The child: one side against the given server; prints its rate and peak RSS as JSON."""
    run = run_pipeline if args.side == "pipeline" else run_bare
    rate = anyio.run(run, args.url, args, Path(args.problems))
    print(json.dumps({"turns_per_s": rate,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(side: str, args: argparse.Namespace, problems: Path) -> dict[str, float]:
    with mock_server_process(mock_config(args.latency_ms)) as url:
        child = subprocess.run([sys.executable, __file__, "--side", side, "--url", url, "--problems", str(problems),
                                "--traces", str(args.traces), "--turns", str(args.turns),
                                "--in-flight", str(args.in_flight)], capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{child.stderr[-3000:]}")
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs; the first side alternates (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--side", choices=("bare", "pipeline"), help=argparse.SUPPRESS)  # a child run
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--problems", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        one_side(args)
        return

    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as directory:
        problems = Path(directory) / "problems.jsonl"  # written before either side is timed
        problems.write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in builtin_problems("mixed", args.traces)))
        for round_ in range(args.rounds):
            order = ("bare", "pipeline") if round_ % 2 == 0 else ("pipeline", "bare")
            for position, side in enumerate(order):
                runs.append({"round": round_ + 1, "side": side, "first": position == 0,
                             **measure(side, args, problems)})
    ideal = args.in_flight / (args.latency_ms / 1000)

    def rates(side: str) -> list[float]:
        return [float(r["turns_per_s"]) for r in runs if r["side"] == side]  # type: ignore[arg-type]

    bare, pipeline = rates("bare"), rates("pipeline")
    per_round = [p / b for p, b in zip(pipeline, bare, strict=True)]
    result = {
        "traces": args.traces, "turns_per_trace": args.turns, "in_flight": args.in_flight,
        "latency_ms": args.latency_ms, "rounds": args.rounds, "ideal_turns_per_s": round(ideal, 1),
        "runs": [{**r, "turns_per_s": round(float(r["turns_per_s"]), 1),  # type: ignore[arg-type]
                  "peak_rss_mb": round(float(r["peak_rss_mb"]), 1)} for r in runs],  # type: ignore[arg-type]
        "bare_turns_per_s": [round(v, 1) for v in bare], "pipeline_turns_per_s": [round(v, 1) for v in pipeline],
        "pipeline_vs_bare_per_round": [round(v, 3) for v in per_round],
        "pipeline_vs_bare_median": round(statistics.median(per_round), 3),
        "pipeline_vs_bare_best": round(max(pipeline) / max(bare), 3),
        "pipeline_vs_ideal_best": round(max(pipeline) / ideal, 3), "bare_vs_ideal_best": round(max(bare) / ideal, 3),
        "pipeline_peak_rss_mb": round(max(float(r["peak_rss_mb"]) for r in runs  # type: ignore[arg-type]
                                          if r["side"] == "pipeline"), 1),
        "goal": {"fraction": 0.9, "peak_rss_mb": 1024},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.traces:,} traces x {args.turns} turns, {args.in_flight} in flight, {args.latency_ms:g} ms per call; "
          f"a fresh mock process and client process per run, {args.rounds} rounds, order alternating:")
    print(f"  ideal     : {result['ideal_turns_per_s']:>8} turns/s")
    for run in result["runs"]:
        print(f"  round {run['round']} {run['side']:8} ({'first' if run['first'] else 'second'}): "
              f"{run['turns_per_s']:>8} turns/s ({run['turns_per_s'] / ideal:.2f} of ideal), "
              f"peak RSS {run['peak_rss_mb']} MB")
    print(f"  spread    : bare {spread(bare)}, pipeline {spread(pipeline)} turns/s")
    print(f"  pipeline / bare per round: {result['pipeline_vs_bare_per_round']} (median "
          f"{result['pipeline_vs_bare_median']}); best/best {result['pipeline_vs_bare_best']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
