"""Prompt-cache use and throughput of multi-turn traces on a real llama.cpp server: the
default policy (one trace in flight per slot the server states) against the policy before it
(the same concurrency, 256 traces in flight), in the same run.

    python benchmarks/llama_cache.py [--slots 4] [--traces 40] [--turns 3] [--rounds 3] [--json]

Needs ``make test-real`` (llama.cpp's ``llama-server`` and SmolLM2-135M-Instruct). One server
(``--slots`` slots, ``--threads`` threads) serves every run; each run is the same ``generate``
job (``builtin:arithmetic``, seed 1, ``--max-turns``, ``--max-tokens 48``, ``--final-every 0``,
temperature 0) into a fresh file. Each round runs both policies, the order rotated from one
round to the next, so a busy spell of a shared machine does not always hit the same one.

Reported per run, from the server's own counts: the cached share of the prompt tokens of turns
2 and later (``prompt_tokens_details.cached_tokens``, recorded as ``cache_read_tokens``), the
ideal share (each turn's prompt could reuse at most the previous turn's prompt and reply),
cached ÷ ideal (goal >= 0.9), traces/s, and the busy share of decode steps from ``/metrics``
(``n_busy_slots_per_decode`` over the slot count). The summary gives each figure's median and
range over the rounds, and the default's traces/s over the old policy's, round by round.
Throughput on a shared machine is noisy; the cache counts are not.

Where the idle slot time goes, from the records' own clocks (each trace's start and end, each
call's time in the server): of the slots' time over the run (slots x wall time), the share
spent in calls (``in_calls``), the share idle because fewer traces than slots were still
running (``idle_few_traces``: the start and the tail of the run), and the share idle while a
running trace had no call in the server (``idle_between_turns``: the client turning a trace
around, from the end of one reply to the next request). This is time-weighted; the server's
busy share counts decode steps, which are faster with fewer slots busy, so the two differ a little.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from llama_capacity import metrics

from open_strawberry.bench.server_metrics import busy_share
from open_strawberry.bench.traces import cache_use
from open_strawberry.messages import TraceRecord
from open_strawberry.pipeline import generate
from open_strawberry.serving import open_llama_server, smollm2_gguf
from open_strawberry.traces import read_traces

POLICIES = ("default", "previous")


async def one_run(model: str, out: Path, args: argparse.Namespace, policy: str) -> float:
    """Traces/s of one ``generate`` run under ``policy``."""
    # the previous policy: the concurrency the server states, given by hand (no probe, no cap on traces)
    options: dict[str, Any] = {"max_concurrency": args.slots} if policy == "previous" else {}
    started = time.perf_counter()
    summary = await generate(problems=f"builtin:arithmetic:{args.traces}", model=model, out=str(out), seed=1,
                             max_turns=args.turns, max_tokens=48, final_every=0, temperature=0.0, **options)
    assert summary.failed == 0, summary.statuses
    return summary.written / (time.perf_counter() - started)


def slot_time(records: list[TraceRecord], slots: int) -> dict[str, float]:
    """Shares of the slots' time over the run: in calls, idle for want of traces, idle between a
    trace's turns (see the module's docstring)."""
    edges = sorted([(r.started_at, 1) for r in records] + [(r.finished_at, -1) for r in records])
    if not edges:
        return {"in_calls": 0.0, "idle_few_traces": 0.0, "idle_between_turns": 0.0}
    held = few = 0.0  # slot-seconds held by running traces, and slot-seconds with no trace to hold them
    running, last = 0, edges[0][0]
    for at, step in edges:
        held += min(running, slots) * (at - last)
        few += max(0, slots - running) * (at - last)
        running, last = running + step, at
    whole = slots * (edges[-1][0] - edges[0][0]) or 1e-9
    in_calls = sum(turn.timings.e2e_s for r in records for turn in r.turns)
    return {"in_calls": in_calls / whole, "idle_few_traces": few / whole,
            "idle_between_turns": max(0.0, held - in_calls) / whole}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--traces", type=int, default=40)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder, start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(open_llama_server(
                smollm2_gguf(), log=Path(folder) / "server.log", parallel=args.slots, threads=args.threads)) as server:
        for round_ in range(args.rounds):
            order = POLICIES[round_ % 2:] + POLICIES[:round_ % 2]
            for policy in order:
                out = Path(folder) / f"{policy}-{round_}.jsonl"
                before = metrics(server.root)
                rate = anyio.run(functools.partial(one_run, server.model(), out, args, policy))
                after = metrics(server.root)
                records = list(read_traces(out))
                cache = cache_use(records)
                cached, ideal = cache["cached_share"] or 0.0, cache["ideal_share"] or 0.0
                runs.append({"round": round_, "policy": policy, "traces_per_s": rate, "cached_share": cached,
                             "ideal_share": ideal, "cached_over_ideal": cached / ideal if ideal else 0.0,
                             "busy_share": busy_share(before, after, args.slots) or 0.0,
                             **slot_time(records, args.slots)})
                if not args.json:
                    row = runs[-1]
                    print(f"round {round_} {policy:>8}: {rate:.3f} traces/s, cached {cached:.3f} of ideal {ideal:.3f} "
                          f"({row['cached_over_ideal']:.2f}), slots busy {row['busy_share']:.3f}; slot time in calls "
                          f"{row['in_calls']:.3f}, idle for want of traces {row['idle_few_traces']:.3f}, "
                          f"idle between turns {row['idle_between_turns']:.3f}", flush=True)
    report = summarize(runs, server_name=f"{server.name} ({server.version}), {args.slots} slots, "
                                          f"{args.threads} thread(s), SmolLM2-135M-Instruct", args=args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for policy in POLICIES:
        figures = report["policies"][policy]
        print(f"{policy:>8}: " + ", ".join(f"{name} {f['median']:.3f} [{f['min']:.3f}, {f['max']:.3f}]"
                                           for name, f in figures.items()))
    ratios = report["default_over_previous_traces_per_s"]
    print(f"default / previous traces/s by round: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(median {statistics.median(ratios):.3f})")


def summarize(runs: list[dict[str, Any]], *, server_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each policy's figures (median and range over the rounds) and the per-round ratio."""
    figures = ("traces_per_s", "cached_over_ideal", "cached_share", "ideal_share", "busy_share", "in_calls",
               "idle_few_traces", "idle_between_turns")
    policies = {policy: {name: spread([r[name] for r in runs if r["policy"] == policy]) for name in figures}
                for policy in POLICIES}
    rate = {(r["round"], r["policy"]): r["traces_per_s"] for r in runs}
    ratios = [rate[(n, "default")] / rate[(n, "previous")] for n in range(args.rounds)]
    return {"server": server_name, "workload": f"{args.traces} traces x {args.turns} turns, 48 tokens a turn",
            "runs": runs, "policies": policies, "default_over_previous_traces_per_s": ratios}


if __name__ == "__main__":
    main()
