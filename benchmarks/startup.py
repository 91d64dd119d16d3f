"""Startup benchmark: ``import open_strawberry`` and ``open-strawberry --version`` against a bare interpreter.

    python benchmarks/startup.py [--runs N] [--json]

Each case runs in a fresh interpreter (``sys.executable``), ``--runs`` times; the cases take
turns run by run, so that a busy spell of a shared machine hits them all alike, after one
untimed warm-up run each (bytecode caches, file cache). The baseline, measured in the same
run, is ``python -c pass``. Reported per case: the median wall time, what it adds to the
baseline and the ratio to it, and the modules it imports (``-X importtime``, one extra run),
with the heavy libraries among them. Goal: ``--version`` adds less than 0.25 s to a bare
interpreter, and neither it, ``--help`` nor ``import open_strawberry`` imports an SDK.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = {
    "python -c pass": ["-c", "pass"],
    "import open_strawberry": ["-c", "import open_strawberry"],
    "open-strawberry --version": ["-m", "open_strawberry.cli", "--version"],
    "open-strawberry --help": ["-m", "open_strawberry.cli", "--help"],
}
BASELINE = "python -c pass"
HEAVY = ("openai", "anthropic", "pydantic", "httpx", "aiohttp", "rich", "structlog", "anyio", "msgspec",
         "importlib.metadata")
GOAL_EXTRA_S = 0.25


def environment() -> dict[str, str]:
    """This environment, with the source tree importable in case the package is not installed."""
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def wall_time(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def imported_modules(args: list[str], env: dict[str, str]) -> list[str]:
    """The modules a run imports, in order, as ``-X importtime`` lists them."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, check=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    return [line.rsplit("|", 1)[1].strip() for line in lines[1:]]  # the first line is the header


def measure(runs: int) -> dict[str, dict[str, Any]]:
    env = environment()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for args in CASES.values():
        wall_time(args, env)
    for _ in range(runs):
        for name, args in CASES.items():
            times[name].append(wall_time(args, env))
    base = statistics.median(times[BASELINE])
    results: dict[str, dict[str, Any]] = {}
    for name, args in CASES.items():
        median = statistics.median(times[name])
        modules = imported_modules(args, env)
        results[name] = {
            "median_s": round(median, 4),
            "min_s": round(min(times[name]), 4),
            "extra_s": round(median - base, 4),
            "ratio": round(median / base, 2),
            "modules": len(modules),
            "heavy": [package for package in HEAVY if package in modules],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each case (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    cases = measure(args.runs)
    version = cases["open-strawberry --version"]
    report = {"runs": args.runs, "python": sys.version.split()[0], "load_average": os.getloadavg()[0],
              "cases": cases, "goal_extra_s": GOAL_EXTRA_S,
              "goal_met": version["extra_s"] < GOAL_EXTRA_S
              and not any({"openai", "anthropic", "pydantic"} & set(case["heavy"]) for case in cases.values())}
    if args.json:
        print(json.dumps(report))
        return
    print(f"startup, median of {args.runs} fresh runs each (load average {report['load_average']:.2f}):")
    for name, case in cases.items():
        heavy = ", ".join(case["heavy"]) or "none"
        print(f"  {name:26}: {1000 * case['median_s']:6.1f} ms  +{1000 * case['extra_s']:6.1f} ms  "
              f"x{case['ratio']:<5}  "
              f"{case['modules']:4} modules imported; heavy: {heavy}")
    print(f"goal: --version adds < {GOAL_EXTRA_S} s and nothing imports an SDK: "
          f"{'met' if report['goal_met'] else 'NOT met'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
