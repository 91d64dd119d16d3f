"""Pipeline benchmark: how close ``generate`` comes to the ideal rate and to a bare loop.

    python benchmarks/pipeline.py [--traces 10000] [--turns 5] [--in-flight 256] [--latency-ms 200] [--json]

The mock server runs in a separate process and answers every streamed call after
``--latency-ms`` (the whole reply then follows at once, in chunks of 8 tokens), and never
gives a final answer, so every trace runs exactly ``--turns`` turns. Measured in the same run:

* **pipeline**: ``generate()`` (Prompter, Generator pool, Arbiter, Grader, JSONL sink, limiter)
  with ``--in-flight`` traces and calls in flight;
* **bare loop**: ``--in-flight`` tasks, each making a trace's calls one after the other with
  a bare ``aiohttp`` session (the conversation grows the same way), no actors, no file.

Both read the same problems file, written before either is timed.

Reported: turns per second of each, the pipeline's as a fraction of the ideal (in flight /
latency) and of the bare loop, and the pipeline process's peak RSS. Goal: at least 0.9 of
both, under 1 GB. On a small machine the mock server shares the CPU with the client; the
bare loop shows what the machine allows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.messages import Problem
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.prompting.prompts import NUDGES, SYSTEM_PROMPTS


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                               "--ttft-ms", str(latency_ms), "--tokens-per-chunk", "8", "--confident-after", "1000"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("mock server listening on "):
        raise SystemExit(f"the mock server did not start: {line!r}")
    return server, line.split()[4]


async def run_pipeline(url: str, args: argparse.Namespace, problems: Path, out: Path) -> float:
    config = GenerateConfig(problems=str(problems), model=f"mock:reasoner@{url}/v1", out=str(out),
                            max_traces=args.in_flight, max_concurrency=args.in_flight, max_turns=args.turns,
                            final_every=0, temperature=None, max_tokens=256)
    summary = await generate(config)
    assert summary.written == args.traces, summary
    return summary.written * args.turns / summary.elapsed_s


async def run_bare(url: str, args: argparse.Namespace, problem_list: list[Problem]) -> float:
    problems = iter(problem_list)
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
            messages += [{"role": "assistant", "content": "".join(parts)}, {"role": "user", "content": NUDGES[turn]}]
            turns += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        for index, problem in enumerate(problems):
            await trace(session, problem.prompt, index)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=args.in_flight)
    async with aiohttp.ClientSession(connector=connector) as session, anyio.create_task_group() as tg:
        for _ in range(args.in_flight):
            tg.start_soon(worker, session)
    return turns / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    server, url = start_server(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as directory:
            problems = Path(directory) / "problems.jsonl"  # generated before either side is timed
            problems.write_bytes(b"".join(msgspec.json.encode(p) + b"\n"
                                          for p in builtin_problems("mixed", args.traces)))
            problem_list = [msgspec.json.decode(line, type=Problem) for line in problems.read_bytes().splitlines()]
            bare = anyio.run(run_bare, url, args, problem_list)
            pipeline = anyio.run(run_pipeline, url, args, problems, Path(directory) / "traces.jsonl")
    finally:
        server.terminate()
        server.wait(timeout=30)
    ideal = args.in_flight / (args.latency_ms / 1000)
    result = {
        "traces": args.traces, "turns_per_trace": args.turns, "in_flight": args.in_flight,
        "latency_ms": args.latency_ms, "ideal_turns_per_s": round(ideal, 1),
        "bare_turns_per_s": round(bare, 1), "pipeline_turns_per_s": round(pipeline, 1),
        "pipeline_vs_ideal": round(pipeline / ideal, 3), "pipeline_vs_bare": round(pipeline / bare, 3),
        "bare_vs_ideal": round(bare / ideal, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "goal": {"fraction": 0.9, "peak_rss_mb": 1024},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.traces:,} traces x {args.turns} turns, {args.in_flight} in flight, "
          f"{args.latency_ms:g} ms per call (mock in a separate process):")
    print(f"  ideal     : {result['ideal_turns_per_s']:>8} turns/s")
    print(f"  bare loop : {result['bare_turns_per_s']:>8} turns/s ({result['bare_vs_ideal']} of ideal)")
    print(f"  pipeline  : {result['pipeline_turns_per_s']:>8} turns/s ({result['pipeline_vs_ideal']} of ideal, "
          f"{result['pipeline_vs_bare']} of the bare loop)")
    print(f"  peak RSS  : {result['peak_rss_mb']} MB (goal < 1024 MB)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
