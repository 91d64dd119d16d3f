"""``bench``: the latency and throughput of an LLM server, and ``bench compare``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec

from open_strawberry.errors import OpenStrawberryError

__all__ = ["add_bench", "run_bench_command"]


def add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="measure the latency and throughput of an LLM server",
        description="Send single-turn streamed requests of a given size in a closed loop (--concurrency) or an "
                    "open loop (--rate); report TTFT, TPOT, ITL and end-to-end latency, throughput and goodput. "
                    "Metric definitions: open_strawberry.bench.metrics.")
    bench.add_argument("--model", help="provider:model[@base_url] (not needed with --mock)")
    bench.add_argument("--base-url", help="server URL, instead of the one in --model")
    bench.add_argument("--concurrency", help="closed loop: requests in flight; a list (1,4,16) sweeps")
    bench.add_argument("--rate", help="open loop: requests per second (seeded arrivals); a list sweeps")
    bench.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of arrivals; 1 is Poisson")
    bench.add_argument("--max-concurrency", type=int, help="open loop: cap on requests in flight")
    bench.add_argument("--requests", type=int, help="measured requests (after the warm-up)")
    bench.add_argument("--duration", type=float, help="stop sending after this many seconds")
    bench.add_argument("--warmup", type=int, default=0, help="requests sent first and left out of the figures")
    bench.add_argument("--input-tokens", type=int, default=128, help="prompt length (default: 128)")
    bench.add_argument("--output-tokens", type=int, default=128,
                       help="output length, forced with ignore_eos where the server knows it (default: 128)")
    bench.add_argument("--percentiles", default="50,90,95,99,99.9", help="percentiles to report")
    bench.add_argument("--slo", help="goodput targets, e.g. ttft=500,tpot=50,e2e=5000 (ms)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", type=Path, default=Path("out/bench"), help="directory for the outputs")
    bench.add_argument("--workload", choices=["single", "traces"], default="single",
                       help="single-turn requests, or whole multi-turn traces through the pipeline (default: single)")
    bench.add_argument("--traces", type=int, default=50, help="traces workload: how many (default: 50)")
    bench.add_argument("--strategy", choices=["nudge", "verify"], default="nudge", help="traces workload: strategy")
    bench.add_argument("--max-turns", type=int, default=8, help="traces workload: turns per trace at most")
    bench.add_argument("--mock", action="store_true", help="benchmark the mock server, started in a separate process")
    bench.add_argument("--mock-ttft-ms", type=float, default=100.0)
    bench.add_argument("--mock-tokens-per-s", type=float, default=100.0)
    bench.add_argument("compare", nargs="*", metavar="compare A.json B.json",
                       help="instead of running: show two runs' summary.json side by side (B relative to A)")


def run_bench_command(args: argparse.Namespace) -> int:
    import subprocess

    if args.compare:
        if args.compare[0] != "compare" or len(args.compare) != 3:
            raise OpenStrawberryError("usage: open-strawberry bench compare A.json B.json")
        return _bench_compare(Path(args.compare[1]), Path(args.compare[2]))

    from open_strawberry.backends.models import create_backend, parse_model
    from open_strawberry.bench import BenchPlan, run_bench, summarize
    from open_strawberry.bench.report import write_outputs, write_sweep

    try:
        loads = [float(v) for v in (args.concurrency or args.rate or "").split(",") if v.strip()]
        percentiles = [float(p) for p in args.percentiles.split(",")]
        slo = {k.strip(): float(v) for k, v in (part.split("=") for part in args.slo.split(","))} if args.slo else {}
    except ValueError:
        raise OpenStrawberryError("--concurrency and --rate take numbers (a comma list sweeps), --percentiles "
                                  "numbers like 50,99, and --slo pairs like ttft=500,e2e=5000") from None
    unknown = sorted(set(slo) - {"ttft", "tpot", "e2e"})
    if unknown:
        raise OpenStrawberryError(f"--slo knows ttft, tpot and e2e, not {', '.join(unknown)}")
    load_name = "concurrency" if args.concurrency else "rate"
    if args.workload == "traces" and (not args.concurrency or len(loads) != 1):
        raise OpenStrawberryError("the traces workload runs a closed loop: give one --concurrency (traces in flight)")

    def plan_for(value: float | None) -> BenchPlan:
        return BenchPlan(concurrency=int(value) if args.concurrency and value is not None else None,
                         rate=value if args.rate else None, burstiness=args.burstiness,
                         max_concurrency=args.max_concurrency, requests=args.requests, duration_s=args.duration,
                         warmup=args.warmup, input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                         seed=args.seed)

    plan = plan_for(loads[0] if loads else None)
    if args.workload == "single":
        plan.check()
    server = None
    model = args.model
    if args.mock:
        server = subprocess.Popen([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                                   "--ttft-ms", str(args.mock_ttft_ms), "--tokens-per-s", str(args.mock_tokens_per_s)],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        model = f"mock:bench@{server.stdout.readline().split()[4]}/v1"
    elif not model:
        raise OpenStrawberryError("give --model (or --mock)")
    if args.base_url:
        model = f"{model.split('@http')[0]}@{args.base_url}"
    ignore_eos = parse_model(model).api == "openai"  # an OpenAI-compatible field; others refuse it
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.workload == "traces":
        from open_strawberry.bench.report import write_trace_outputs
        from open_strawberry.bench.traces import run_trace_bench

        try:
            document = anyio.run(lambda: run_trace_bench(model, args.out, traces=args.traces,
                                                         concurrency=int(loads[0]), strategy=args.strategy,
                                                         max_turns=args.max_turns, percentiles=percentiles))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
        print(write_trace_outputs(args.out, document, arguments))
        print(f"written: {args.out}/summary.json, {args.out}/requests.jsonl, {args.out}/traces.jsonl, "
              f"{args.out}/report.md")
        return 0
    points: list[tuple[float, dict[str, Any]]] = []
    try:
        for value in loads:
            point = dataclasses.replace(plan_for(value), ignore_eos=ignore_eos)
            out = args.out if len(loads) == 1 else args.out / f"{load_name}-{value:g}"
            backend = create_backend(model, max_connections=max(point.concurrency or 0, point.max_concurrency or 0,
                                                                256))

            async def go(point: BenchPlan = point, backend: Any = backend) -> Any:
                try:
                    return await run_bench(point, backend)
                finally:
                    await backend.aclose()

            records, health = anyio.run(go)
            summary = summarize(records, percentiles=percentiles, slo_ms=slo)
            write_outputs(out, records, summary, health, {**arguments, load_name: value})
            points.append((value, summary))
            print((out / "report.md").read_text())
            print(f"written: {out}/summary.json, {out}/requests.jsonl, {out}/report.md\n")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    if len(points) > 1:
        print(write_sweep(args.out, load_name, points))
        print(f"written: {args.out}/sweep.md, {args.out}/sweep.json")
    return 0


def _bench_compare(first: Path, second: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    runs = []
    for path in (first, second):
        try:
            runs.append(msgspec.json.decode(path.read_bytes()))
        except (OSError, msgspec.DecodeError) as exc:
            raise OpenStrawberryError(f"{path}: not a readable summary.json ({exc})") from None
    a, b = runs
    table = Table("metric", f"A: {first}", f"B: {second}", "B / A", title="bench compare", title_justify="left")
    rows: list[tuple[str, Any, Any]] = [(name, a.get(name), b.get(name)) for name in (
        "request_throughput", "output_token_throughput", "total_token_throughput", "goodput", "failed")]
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        for stat in ("mean", "p50", "p99"):
            rows.append((f"{metric} {stat}", (a.get(metric) or {}).get(stat), (b.get(metric) or {}).get(stat)))
    for name, left, right in rows:
        ratio = f"{right / left:.3f}" if isinstance(left, (int, float)) and isinstance(right, (int, float)) and left \
            else "—"
        table.add_row(name, _show(left), _show(right), ratio)
    Console().print(table)
    return 0


def _show(value: Any) -> str:
    return "—" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)
