"""Export benchmark: memory and time of stats, SFT, DPO and select on a large traces file.

    python benchmarks/exports.py [--lines 1000000] [--problems 10000] [--json]

Writes a synthetic traces file (``--lines`` records over ``--problems`` problems, about 600
bytes each, half of them correct), then runs each command in a fresh process and reads its
peak RSS, on the big file and on a small one (1% of the lines) in the same run. Flat memory
means the big file's peak is close to the small one's: it follows the problems, not the lines.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.messages import ChatMessage, Problem, TraceRecord, TraceState, TurnRecord, Usage, json_encoder

COMMANDS = {
    "stats": ["stats", "{traces}", "--json"],
    "export sft": ["export", "sft", "{traces}", "--out", "{out}"],
    "export dpo": ["export", "dpo", "{traces}", "--out", "{out}"],
    "select": ["select", "{traces}", "--out", "{out}"],
}


def write_traces(path: Path, lines: int, problems: int) -> None:
    rng = random.Random(0)
    with path.open("wb") as file:
        for index in range(lines):
            problem = index % problems
            state = TraceState(trace_id=f"t{index}", problem=Problem(id=f"p{problem}", prompt=f"What is {problem} + 1?",
                                                                     answer=str(problem + 1)),
                               sample=index // problems, model="mock:m")
            state = state.with_message(ChatMessage(role="user", content=state.problem.prompt))
            steps = rng.randint(1, 4)
            for step in range(steps):
                state = state.with_turn(ChatMessage(role="assistant", content=f"Step {step}: " + "thinking " * 8),
                                        TurnRecord(kind="nudge", usage=Usage(input_tokens=40, output_tokens=20)))
            correct = rng.random() < 0.5
            record = TraceRecord.from_state(state, status="final", final_answer=str(problem + (1 if correct else 2)),
                                            correct=correct)
            file.write(json_encoder.encode(record) + b"\n")


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one CLI command in a fresh process."""
    code = ("import resource, sys, time; from open_strawberry.cli import main; t = time.perf_counter(); "
            "status = main(sys.argv[1:]); print(); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "time.perf_counter() - t); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    rss, seconds = result.stdout.strip().splitlines()[-1].split()
    return float(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        big, small = Path(directory) / "big.jsonl", Path(directory) / "small.jsonl"
        started = time.perf_counter()
        write_traces(big, args.lines, args.problems)
        write_traces(small, max(1, args.lines // 100), args.problems)
        written_s = time.perf_counter() - started
        file_mb = round(big.stat().st_size / 2**20, 1)
        for name, template in COMMANDS.items():
            row: dict[str, float] = {}
            for size, traces in (("small", small), ("big", big)):
                out = Path(directory) / f"{name}-{size}.jsonl"
                command = [part.format(traces=traces, out=out) for part in template]
                row[f"{size}_peak_rss_mb"], row[f"{size}_seconds"] = peak_rss(command)
            row["rss_ratio_big_to_small"] = round(row["big_peak_rss_mb"] / row["small_peak_rss_mb"], 2)
            results[name] = row
    report = {"lines": args.lines, "problems": args.problems,
              "file_mb": file_mb,
              "write_s": round(written_s, 1), "commands": results}
    if args.json:
        print(msgspec.json.encode(report).decode())
        return
    print(f"{args.lines:,} trace lines ({file_mb} MB) over {args.problems:,} problems (small file: 1% of the lines):")
    for name, row in results.items():
        print(f"  {name:11}: peak RSS {row['small_peak_rss_mb']:.0f} MB small, {row['big_peak_rss_mb']:.0f} MB big "
              f"(x{row['rss_ratio_big_to_small']}); {row['big_seconds']:.1f} s on the big file")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
