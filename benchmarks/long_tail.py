"""Long-tail multi-turn: per-trace scheduling against a per-turn batch barrier, with reply
lengths drawn from a heavy-tailed distribution.

    python benchmarks/long_tail.py [--traces 600] [--turns 4] [--concurrency 64] [--distribution lognormal]
                                   [--median-tokens 200] [--sigma 1.2] [--alpha 1.5] [--max-tokens 4096]
                                   [--tokens-per-s 1000] [--rounds 2] [--json]

The mock server (a separate process) draws each reply's length from a seeded lognormal (or
Pareto) distribution (``MockConfig.reply_lengths``), capped at ``--max-tokens``, and streams
it at ``--tokens-per-s`` after 50 ms, so a reply's time grows with its length; it never gives
a final answer, so every trace runs exactly ``--turns`` turns. The length of a reply depends
only on the trace's seed, its problem and the turn, so every variant meets the same lengths.
Three ways to make the same traces, ``--concurrency`` calls at a time each:

* **pipeline**: ``generate()``: each trace's next turn is queued as soon as its last one
  ends (``max_traces`` 4 x concurrency);
* **per-trace (bare)**: ``--concurrency`` workers on the native client, each taking a trace
  through all its turns, then the next trace: per-trace scheduling without the pipeline;
* **barrier**: what users of batch tools do for multi-turn: turn 1 of every trace (a pool
  of ``--concurrency`` workers over all of them), wait for the last, then turn 2, and so on.
  At the end of each turn the slots idle while the longest replies finish.

Every run gets a fresh mock server and a fresh client process; rounds rotate the order of the
variants. Reported: turns per second of each run, the spread, the ratios per-trace / barrier
(pipeline and bare, per round and best against best), and slot use: the calls' summed
durations over (concurrency x elapsed), how busy the call slots were; and each run's output
tokens: the same in the bare runs, and within a fraction of a percent in the pipeline's (its
system prompts and nudges differ, which changes the few replies drawn shorter than the
reasoner's own text).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.messages import Problem, record_decoder
from open_strawberry.mock import MockConfig, ReplyLengths
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.prompting.prompts import NUDGES, SYSTEM_PROMPTS

VARIANTS = ("pipeline", "per_trace", "barrier")
SEED = 0


def request_seed(problem_id: str) -> int:
    """The sampling seed ``generate`` sends for sample 0 of ``problem_id`` (so the mock draws the
    same reply lengths for every variant)."""
    trace_id = hashlib.blake2b(f"{SEED}\0{problem_id}\0{0}".encode(), digest_size=8).hexdigest()
    return (SEED + zlib.crc32(trace_id.encode())) % 2**31


class Conversation:
    """One trace of the bare variants: the messages so far, grown the way ``generate`` grows them."""

    def __init__(self, problem: Problem) -> None:
        self.seed = request_seed(problem.id)
        self.system = next(iter(SYSTEM_PROMPTS.values()))
        self.messages: tuple[ChatMessage, ...] = (ChatMessage(role="user", content=problem.prompt),)
        self.turns = 0

    def request(self, max_tokens: int) -> ChatRequest:
        return ChatRequest(messages=self.messages, system=self.system, max_tokens=max_tokens, seed=self.seed)

    def answered(self, text: str) -> None:
        nudge = NUDGES[self.turns % len(NUDGES)]
        self.messages += (ChatMessage(role="assistant", content=text), ChatMessage(role="user", content=nudge))
        self.turns += 1


async def pool(jobs: Iterator[Conversation], concurrency: int, backend: OpenAIChatBackend, max_tokens: int,
               durations: list[float], tokens: list[int], *, turns: int) -> None:
    """``concurrency`` workers; each takes the next conversation and makes ``turns`` turns of it."""
    async def worker() -> None:
        for conversation in jobs:
            for _ in range(turns):
                started = time.perf_counter()
                completion = await backend.complete(conversation.request(max_tokens))
                durations.append(time.perf_counter() - started)
                tokens.append(completion.usage.output_tokens)
                conversation.answered(completion.text)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


async def run_bare(variant: str, args: argparse.Namespace, problems: list[Problem]) -> dict[str, float]:
    conversations = [Conversation(p) for p in problems]
    durations: list[float] = []
    tokens: list[int] = []
    backend = OpenAIChatBackend(base_url=f"{args.url}/v1", model="reasoner", provider="vllm")
    async with backend:
        started = time.perf_counter()
        if variant == "per_trace":
            await pool(iter(conversations), args.concurrency, backend, args.max_tokens, durations, tokens,
                       turns=args.turns)
        else:  # the barrier: every trace's turn t, then every trace's turn t + 1
            for _ in range(args.turns):
                await pool(iter(conversations), args.concurrency, backend, args.max_tokens, durations, tokens, turns=1)
        elapsed = time.perf_counter() - started
    assert all(c.turns == args.turns for c in conversations)
    return {"elapsed_s": elapsed, "turns": len(durations), "call_seconds": sum(durations),
            "output_tokens": sum(tokens)}


async def run_pipeline(args: argparse.Namespace, problems_file: Path) -> dict[str, float]:
    out = problems_file.with_name(f"traces-{time.time_ns()}.jsonl")
    config = GenerateConfig(problems=str(problems_file), model=f"mock:reasoner@{args.url}/v1", out=str(out),
                            max_traces=4 * args.concurrency, max_concurrency=args.concurrency, max_turns=args.turns,
                            final_every=0, temperature=None, max_tokens=args.max_tokens, seed=SEED)
    summary = await generate(config)
    assert summary.written == args.traces and summary.statuses == {"max_turns": args.traces}, summary
    records = [record_decoder.decode(line) for line in (await anyio.Path(out).read_bytes()).splitlines()]
    calls = sum(turn.timings.e2e_s for record in records for turn in record.turns)
    return {"elapsed_s": summary.elapsed_s, "turns": sum(len(r.turns) for r in records), "call_seconds": calls,
            "output_tokens": sum(turn.usage.output_tokens for record in records for turn in record.turns)}


def one_variant(args: argparse.Namespace) -> None:
    """The child: one variant against the server at ``--url``; prints its figures as JSON."""
    problems_file = Path(args.problems)
    if args.variant == "pipeline":
        result = anyio.run(run_pipeline, args, problems_file)
    else:
        problems = [msgspec.json.decode(line, type=Problem) for line in problems_file.read_bytes().splitlines()]
        result = anyio.run(run_bare, args.variant, args, problems)
    print(json.dumps(result))


def mock_config(args: argparse.Namespace) -> MockConfig:
    lengths = ReplyLengths(distribution=args.distribution, median_tokens=args.median_tokens, sigma=args.sigma,
                           alpha=args.alpha, max_tokens=args.max_tokens)
    return MockConfig(ttft_s=0.05, tokens_per_s=args.tokens_per_s, tokens_per_chunk=16, confident_after=1000,
                      reply_lengths=lengths)


def measure(variant: str, args: argparse.Namespace, problems_file: Path) -> dict[str, Any]:
    with mock_server_process(mock_config(args)) as url:
        command = [sys.executable, __file__, "--variant", variant, "--url", url, "--problems", str(problems_file)]
        for name in ("traces", "turns", "concurrency", "max_tokens"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"the {variant} run failed:\n{child.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["turns_per_s"] = result["turns"] / result["elapsed_s"]
    result["slot_use"] = result["call_seconds"] / (args.concurrency * result["elapsed_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=600)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--distribution", choices=("lognormal", "pareto"), default="lognormal")
    parser.add_argument("--median-tokens", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=1.2, help="lognormal: spread of the log length")
    parser.add_argument("--alpha", type=float, default=1.5, help="pareto: tail index (lower: heavier)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="the longest reply (and each call's cap)")
    parser.add_argument("--tokens-per-s", type=float, default=1000.0, help="the mock's streaming pace per call")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the order of the variants rotates")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child run
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--problems", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        one_variant(args)
        return

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        problems_file = Path(directory) / "problems.jsonl"  # written before anything is timed
        problems_file.write_bytes(b"".join(msgspec.json.encode(p) + b"\n"
                                           for p in builtin_problems("letters", args.traces)))
        for round_ in range(args.rounds):
            order = VARIANTS[round_ % 3:] + VARIANTS[:round_ % 3]
            for variant in order:
                runs.append({"round": round_ + 1, "variant": variant, **measure(variant, args, problems_file)})

    def rates(variant: str) -> list[float]:
        return [r["turns_per_s"] for r in runs if r["variant"] == variant]

    barrier = rates("barrier")
    ratios = {name: [a / b for a, b in zip(rates(name), barrier, strict=True)] for name in ("pipeline", "per_trace")}
    report = {
        "traces": args.traces, "turns": args.turns, "concurrency": args.concurrency,
        "reply_lengths": msgspec.to_builtins(mock_config(args).reply_lengths), "tokens_per_s": args.tokens_per_s,
        "rounds": args.rounds,
        "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in runs],
        **{f"{name}_vs_barrier_per_round": [round(v, 3) for v in values] for name, values in ratios.items()},
        **{f"{name}_vs_barrier_median": round(statistics.median(values), 3) for name, values in ratios.items()},
        **{f"{name}_vs_barrier_best": round(max(rates(name)) / max(barrier), 3) for name in ("pipeline", "per_trace")},
    }
    if args.json:
        print(json.dumps(report))
        return
    lengths = report["reply_lengths"]
    print(f"{args.traces} traces x {args.turns} turns, {args.concurrency} calls at a time; reply lengths "
          f"{lengths['distribution']} (median {lengths['median_tokens']}, sigma {lengths['sigma']}, alpha "
          f"{lengths['alpha']}, at most {lengths['max_tokens']}) at {args.tokens_per_s:g} tokens/s a call:")
    for run in runs:
        print(f"  round {run['round']} {run['variant']:9}: {run['turns_per_s']:7.1f} turns/s, "
              f"{run['elapsed_s']:6.1f} s, slot use {run['slot_use']:.2f}, {run['output_tokens']:,} output tokens")
    for name in ("pipeline", "per_trace", "barrier"):
        values = rates(name)
        print(f"  {name:9} spread {min(values):.1f}-{max(values):.1f} turns/s")
    for name in ("pipeline", "per_trace"):
        print(f"  {name} / barrier per round: {report[f'{name}_vs_barrier_per_round']} "
              f"(median {report[f'{name}_vs_barrier_median']}, best/best {report[f'{name}_vs_barrier_best']})")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
