"""Concurrency against a real llama.cpp server: what ``generate`` picks by itself, against the
best fixed concurrency found by a sweep, in the same run.

    python benchmarks/llama_capacity.py [--slots 4] [--problems 16] [--sweep 1,2,3,4,5,6] [--json]

Needs ``make test-real`` (llama.cpp's ``llama-server`` and SmolLM2-135M-Instruct). One server
with ``--slots`` parallel slots serves every run. Each run is the same ``generate`` job
(``builtin:arithmetic``, a fixed seed, ``--max-turns 3``, ``--max-tokens 48``) into a fresh
file: the default (the limiter's ceiling taken from the server's ``/props``) and one run per
fixed ``--max-concurrency`` of the sweep. The order of the runs is shuffled (seeded), so a busy
spell of a shared machine does not always hit the same one. Reported: traces/s of each, the
default's ratio to the best fixed (goal >= 0.95), and the server's own busy share for the
default run, from ``/metrics``: decode steps with every slot busy (``n_busy_slots_per_decode``
at the slot count), which only reaches 1 while requests queue (goal >= 0.98).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal

from open_strawberry.bench.server_metrics import busy_share, llamacpp_metrics
from open_strawberry.pipeline import generate
from open_strawberry.serving import open_llama_server, smollm2_gguf


def metrics(root: str) -> dict[str, float]:
    """The server's ``llamacpp:`` figures now (see :mod:`open_strawberry.bench.server_metrics`)."""
    found = anyio.run(llamacpp_metrics, root)
    if found is None:
        raise SystemExit(f"{root}/metrics states nothing: is llama-server running with --metrics?")
    return found


async def one_run(model: str, out: Path, problems: int, concurrency: int | None) -> float:
    started = time.perf_counter()
    summary = await generate(problems=f"builtin:arithmetic:{problems}", model=model, out=str(out), seed=1,
                             max_turns=3, max_tokens=48, temperature=0.0, max_concurrency=concurrency)
    assert summary.failed == 0, summary.statuses
    return summary.written / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--sweep", default="1,2,3,4,5,6")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sweep = [int(v) for v in args.sweep.split(",")]
    runs: list[int | None] = [None, *sweep]
    random.Random(0).shuffle(runs)
    with tempfile.TemporaryDirectory() as folder, start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(open_llama_server(
                smollm2_gguf(), log=Path(folder) / "server.log", parallel=args.slots)) as server:
        model = server.model()
        rates: dict[str, float] = {}
        busy: dict[str, float] = {}
        for index, concurrency in enumerate(runs):
            before = metrics(server.root)
            rate = anyio.run(one_run, model, Path(folder) / f"run{index}.jsonl", args.problems, concurrency)
            after = metrics(server.root)
            name = "default" if concurrency is None else f"fixed {concurrency}"
            rates[name] = rate
            busy[name] = busy_share(before, after, args.slots) or 0.0
    best_name = max((n for n in rates if n != "default"), key=rates.__getitem__)
    report: dict[str, Any] = {
        "server": f"{server.name} ({server.version}), {args.slots} slots, SmolLM2-135M-Instruct Q4_1",
        "traces_per_s": rates, "busy_share": busy, "best_fixed": best_name,
        "default_over_best_fixed": rates["default"] / rates[best_name],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(report["server"])
    for name, rate in sorted(rates.items(), key=lambda item: item[0]):
        print(f"  {name:>9}: {rate:6.2f} traces/s, slots busy {busy[name]:.0%} of decode steps")
    print(f"default / best fixed ({best_name}): {report['default_over_best_fixed']:.3f} (goal >= 0.95); "
          f"busy share of the default run: {busy['default']:.3f} (goal >= 0.98)")


if __name__ == "__main__":
    main()
