"""A million traces: memory over a long run, the resume scan of a big traces file, and
100,000 traces in flight.

    python benchmarks/million.py [--traces 1000000] [--resume-lines 1000000] [--in-flight-traces 100000]
                                 [--phases run,resume,inflight] [--json]

Every phase runs ``generate`` (or the resume scan) in a fresh child process, so that each has
its own memory figures, against the mock server in another process answering after
``--latency-ms`` (default 5: short, so that the client is what is measured). Problems are
built-in letter-counting problems written to a JSONL file before anything is timed (the
built-in ``codes`` puzzles take milliseconds each to make, which would time the puzzle maker).

1. **run**: ``--traces`` single-turn traces (``max_turns`` 1), ``--max-traces`` in flight
   (default 1,024), 256 calls at a time. The child's RSS is sampled every
   ``--sample-every`` seconds with the number of traces done. Baseline: the child's RSS with
   everything imported, just before the run. Reported: the RSS when ``--warmup-traces`` were
   done (the run's percentiles keep up to 100,000 samples, then stop growing) and at the end,
   their ratio (flat: about 1.0), the growth per 100,000 traces after warm-up, the peak, and
   traces per second.
2. **resume**: a traces file of ``--resume-lines`` records (made from the run's records, one
   per problem of a problems file of as many problems, so the file is complete). Measured in
   the same child, file cached: a bare read of its lines (the baseline), the resume scan
   (:func:`~open_strawberry.traces.files.finished_pairs`: lines per second and its ratio to the
   bare read), and, in another child, a whole ``generate`` rerun that finds nothing left to do
   (seconds: what a user waits for). Peak RSS of each.
3. **inflight**: ``--in-flight-traces`` traces in flight at once (``max_traces`` that many,
   single-turn, ``--in-flight-calls`` calls at a time against a mock that answers after
   ``--in-flight-latency-ms``, so that the traces pile up); once all are admitted, they are
   held ``--hold`` seconds and the run is cancelled (draining them would only take long).
   Peak traces in flight and peak RSS, against the same child's RSS before the run. Goal:
   under 600 MB.
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
from typing import Any

import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.messages import json_encoder, record_decoder
from open_strawberry.mock import MockConfig
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.traces.files import finished_pairs


def rss_mb() -> float:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_problems(path: Path, count: int) -> None:
    with path.open("wb") as file:
        for problem in builtin_problems("letters", count):
            file.write(msgspec.json.encode(problem) + b"\n")


def config_for(args: argparse.Namespace, *, max_traces: int, max_concurrency: int) -> GenerateConfig:
    return GenerateConfig(problems=args.problems, model=f"mock:reasoner@{args.url}/v1", out=args.out,
                          max_traces=max_traces, max_concurrency=max_concurrency, max_turns=1, final_every=0,
                          max_tokens=256)


# ---------------------------------------------------------------- children (one measurement each)


def child_run(args: argparse.Namespace) -> dict[str, Any]:
    samples: list[tuple[float, int, int, float]] = []  # (elapsed s, traces done, in flight, RSS MB)

    def sample(progress: Progress) -> None:
        samples.append((round(progress.elapsed_s, 2), progress.done, progress.in_flight, round(rss_mb(), 1)))

    before = rss_mb()
    config = config_for(args, max_traces=args.max_traces, max_concurrency=args.max_concurrency)
    summary = anyio.run(lambda: generate(config, on_progress=sample, progress_every_s=args.sample_every))
    assert summary.written == args.traces, summary
    return {"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1), "elapsed_s": summary.elapsed_s,
            "written": summary.written, "samples": samples,
            "peak_in_flight": max((s[2] for s in samples), default=0)}


def child_scan(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.out)
    started = time.perf_counter()
    with path.open("rb") as file:
        lines = sum(1 for _ in file)  # the baseline: every line read, nothing decoded
    bare_s = time.perf_counter() - started
    rss_after_bare = rss_mb()
    started = time.perf_counter()
    pairs = finished_pairs(path)
    scan_s = time.perf_counter() - started
    assert len(pairs) == lines, (len(pairs), lines)
    return {"lines": lines, "bytes": path.stat().st_size, "bare_read_s": bare_s, "scan_s": scan_s,
            "rss_before_scan_mb": round(rss_after_bare, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def child_rerun(args: argparse.Namespace) -> dict[str, Any]:
    before = rss_mb()
    config = config_for(args, max_traces=1024, max_concurrency=256)
    started = time.perf_counter()
    summary = anyio.run(lambda: generate(config))
    assert summary.written == 0 and summary.resumed == args.traces, summary
    return {"elapsed_s": time.perf_counter() - started, "resumed": summary.resumed,
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def child_inflight(args: argparse.Namespace) -> dict[str, Any]:
    """Admit every trace, hold them in flight for ``--hold`` seconds, then cancel the run: with
    a long latency, draining them all would take many minutes and measure nothing more."""
    peak = {"in_flight": 0, "rss_mb": 0.0}
    all_in = anyio.Event()
    started = time.perf_counter()
    admitted_after: list[float] = []

    def sample(progress: Progress) -> None:
        peak["in_flight"] = max(peak["in_flight"], progress.in_flight)
        peak["rss_mb"] = max(peak["rss_mb"], rss_mb())
        if progress.in_flight + progress.done >= args.traces and not all_in.is_set():
            admitted_after.append(time.perf_counter() - started)
            all_in.set()

    before = rss_mb()
    config = config_for(args, max_traces=args.traces, max_concurrency=args.max_concurrency)

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            async def hold() -> None:
                await all_in.wait()
                await anyio.sleep(args.hold)
                tg.cancel_scope.cancel()

            tg.start_soon(hold)
            await generate(config, on_progress=sample, progress_every_s=0.25)
            tg.cancel_scope.cancel()

    anyio.run(run)
    return {"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_sampled_rss_mb": round(peak["rss_mb"], 1), "peak_in_flight": peak["in_flight"],
            "all_admitted_after_s": round(admitted_after[0], 1) if admitted_after else None}


CHILDREN = {"run": child_run, "scan": child_scan, "rerun": child_rerun, "inflight": child_inflight}


def child(kind: str, **options: object) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {kind} child failed:\n{result.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


# ---------------------------------------------------------------- the phases


def phase_run(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    problems, out = folder / "run-problems.jsonl", folder / "run-traces.jsonl"
    write_problems(problems, args.traces)
    result = child("run", url=url, problems=problems, out=out, traces=args.traces, max_traces=args.max_traces,
                   max_concurrency=256, sample_every=args.sample_every)
    samples = result.pop("samples")
    warm = next((s for s in samples if s[1] >= args.warmup_traces), None)
    last = samples[-1]
    result["samples"] = [*samples[:: max(1, len(samples) // 40)], last]  # about 40 points for the record
    result["traces_per_s"] = round(result["written"] / result["elapsed_s"], 1)
    if warm is not None and last[1] > warm[1]:
        after = [s for s in samples if s[1] >= warm[1]]
        result["rss_at_warmup_mb"], result["rss_at_end_mb"] = warm[3], last[3]
        result["rss_end_over_warmup"] = round(last[3] / warm[3], 3)
        result["rss_max_after_warmup_mb"] = max(s[3] for s in after)
        result["growth_mb_per_100k_traces"] = round((last[3] - warm[3]) / (last[1] - warm[1]) * 100_000, 2)
    return result


def phase_resume(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    """A complete traces file of ``--resume-lines`` records over as many problems."""
    problems, out = folder / "resume-problems.jsonl", folder / "resume-traces.jsonl"
    write_problems(problems, args.resume_lines)
    template = next((folder / "run-traces.jsonl").open("rb"), None) if (folder / "run-traces.jsonl").exists() else None
    if template is None:  # the run phase was left out: make one record of that shape
        template = make_template(folder, url)
    record = record_decoder.decode(template)
    with out.open("wb") as file, problems.open("rb") as source:
        for line in source:
            problem_id = msgspec.json.decode(line)["id"]
            file.write(json_encoder.encode(msgspec.structs.replace(record, problem_id=problem_id, trace_id=problem_id))
                       + b"\n")
    scan = child("scan", out=out)
    rerun = child("rerun", url=url, problems=problems, out=out, traces=args.resume_lines)
    return {"lines": scan["lines"], "file_mb": round(scan["bytes"] / 2**20, 1),
            "bare_read_lines_per_s": round(scan["lines"] / scan["bare_read_s"]),
            "scan_lines_per_s": round(scan["lines"] / scan["scan_s"]), "scan_s": round(scan["scan_s"], 2),
            "scan_vs_bare_read": round(scan["bare_read_s"] / scan["scan_s"], 3),
            "scan_peak_rss_mb": scan["peak_rss_mb"], "scan_rss_before_mb": scan["rss_before_scan_mb"],
            "rerun_s": round(rerun["elapsed_s"], 2), "rerun_peak_rss_mb": rerun["peak_rss_mb"],
            "rerun_rss_before_mb": rerun["rss_before_mb"]}


def make_template(folder: Path, url: str) -> bytes:
    problems, out = folder / "one-problem.jsonl", folder / "one-trace.jsonl"
    write_problems(problems, 1)
    child("run", url=url, problems=problems, out=out, traces=1, max_traces=1, max_concurrency=1, sample_every=1)
    return out.read_bytes().splitlines()[0]


def phase_inflight(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    problems, out = folder / "inflight-problems.jsonl", folder / "inflight-traces.jsonl"
    write_problems(problems, args.in_flight_traces)
    with mock_server_process(MockConfig(ttft_s=args.in_flight_latency_ms / 1000, tokens_per_chunk=8)) as slow_url:
        result = child("inflight", url=slow_url, problems=problems, out=out, traces=args.in_flight_traces,
                       max_concurrency=args.in_flight_calls, hold=args.hold)
    result["peak_over_before"] = round(result["peak_rss_mb"] / result["rss_before_mb"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces of the run phase (default 1,000,000)")
    parser.add_argument("--max-traces", type=int, default=1024, help="traces in flight in the run phase")
    parser.add_argument("--warmup-traces", type=int, default=100_000, help="traces before memory should be flat")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--resume-lines", type=int, default=1_000_000)
    parser.add_argument("--in-flight-traces", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--in-flight-latency-ms", type=float, default=10_000.0,
                        help="the mock's latency in the inflight phase: long enough for the traces to pile up")
    parser.add_argument("--in-flight-calls", type=int, default=1024, help="calls at a time in the inflight phase")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the inflight phase holds every trace")
    parser.add_argument("--phases", default="run,resume,inflight")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--problems", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--max-concurrency", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    phases = {"run": phase_run, "resume": phase_resume, "inflight": phase_inflight}
    report: dict[str, Any] = {"latency_ms": args.latency_ms}
    with (mock_server_process(MockConfig(ttft_s=args.latency_ms / 1000, tokens_per_chunk=8)) as url,
          tempfile.TemporaryDirectory() as directory):
        for name in args.phases.split(","):
            report[name] = phases[name](args, Path(directory), url)
    if args.json:
        print(json.dumps(report))
        return
    if run := report.get("run"):
        print(f"run: {run['written']:,} single-turn traces, {args.max_traces} in flight, "
              f"{run['traces_per_s']} traces/s ({run['elapsed_s']:.0f} s)")
        print(f"  RSS before the run {run['rss_before_mb']} MB; after {args.warmup_traces:,} traces "
              f"{run.get('rss_at_warmup_mb')} MB; at the end {run.get('rss_at_end_mb')} MB "
              f"(ratio {run.get('rss_end_over_warmup')}, {run.get('growth_mb_per_100k_traces')} MB per 100,000 "
              f"traces after warm-up); peak {run['peak_rss_mb']} MB")
        print("  (elapsed s, done, in flight, RSS MB): " + ", ".join(str(tuple(s)) for s in run["samples"][::4]))
    if resume := report.get("resume"):
        print(f"resume: {resume['lines']:,} lines ({resume['file_mb']} MB); bare read "
              f"{resume['bare_read_lines_per_s']:,} lines/s; finished_pairs {resume['scan_lines_per_s']:,} lines/s "
              f"({resume['scan_s']} s, {resume['scan_vs_bare_read']} of the bare read's speed), peak RSS "
              f"{resume['scan_peak_rss_mb']} MB; a generate rerun with nothing left: {resume['rerun_s']} s, "
              f"peak RSS {resume['rerun_peak_rss_mb']} MB")
    if inflight := report.get("inflight"):
        print(f"in flight: {args.in_flight_traces:,} traces ({args.in_flight_calls} calls at a time, "
              f"{args.in_flight_latency_ms:g} ms a call): all admitted after {inflight['all_admitted_after_s']} s, "
              f"peak in flight {inflight['peak_in_flight']:,}, peak RSS {inflight['peak_rss_mb']} MB "
              f"(before the run {inflight['rss_before_mb']} MB; goal < 600 MB)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
