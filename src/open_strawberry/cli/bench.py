"""``bench``: the latency and throughput of an LLM server, and ``bench compare``.

The benchmark, the backends, the mock and rich are imported when the command runs.
"""

from __future__ import annotations

import argparse
import math
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_strawberry.cli.checks import check_count, check_number, check_output_dir, writing
from open_strawberry.errors import ConfigurationError

if TYPE_CHECKING:
    from open_strawberry.bench import BenchPlan, ClientHealth, RequestRecord

__all__ = ["add_parsers", "run_bench_command"]


def add_parsers(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", run=run_bench_command, help="measure the latency and throughput of an LLM server")
    bench.add_argument("--model", help="provider:model[@base_url] (not needed with --mock)")
    bench.add_argument("--base-url", help="server URL, instead of the one in --model")
    bench.add_argument("--concurrency", help="closed loop: requests in flight; a list (1,4,16) sweeps")
    bench.add_argument("--rate", help="open loop: requests per second (seeded arrivals); a list sweeps")
    bench.add_argument("--burstiness", type=float, help="gamma shape of arrivals; 1 is Poisson (default: 1)")
    bench.add_argument("--max-concurrency", type=int, help="open loop: cap on requests in flight")
    bench.add_argument("--requests", type=int, help="measured requests (after the warm-up)")
    bench.add_argument("--duration", type=float, help="stop sending after this many seconds")
    bench.add_argument("--warmup", type=int, help="requests sent first and left out of the figures (default: 0)")
    bench.add_argument("--input-tokens", type=int,
                       help="prompt length, counted by the server's tokenizer where it has one (default: 128)")
    bench.add_argument("--prefix-tokens", type=int,
                       help="a prefix of this many tokens shared by every request, to measure a prefix cache "
                            "(default: 0: every prompt unique across requests, sweep points and runs)")
    bench.add_argument("--output-tokens", type=int,
                       help="output length, forced with ignore_eos where the server knows it (default: 128)")
    bench.add_argument("--percentiles", default="50,90,95,99,99.9", help="percentiles to report")
    bench.add_argument("--slo", help="goodput targets, e.g. ttft=500,tpot=50,e2e=5000 (ms)")
    bench.add_argument("--seed", type=int, help="seed of the prompts and of the arrival times (default: 0)")
    bench.add_argument("--out", type=Path, default=Path("out/bench"), help="directory for the outputs")
    bench.add_argument("--workload", choices=["single", "traces"], default="single",
                       help="single-turn requests, or whole multi-turn traces through the pipeline (default: single)")
    bench.add_argument("--traces", type=int, help="traces workload: how many (default: 50)")
    bench.add_argument("--strategy", choices=["nudge", "verify"],
                       help="traces workload: strategy (default: nudge)")
    bench.add_argument("--max-turns", type=int, help="traces workload: turns per trace at most (default: 8)")
    bench.add_argument("--mock", action="store_true",
                       help="benchmark the mock server, in a child process that stops with the command")
    bench.add_argument("--mock-ttft-ms", type=float, default=100.0,
                       help="with --mock: the mock's time to first token (default: 100)")
    bench.add_argument("--mock-tokens-per-s", type=float, default=100.0,
                       help="with --mock: the mock's streaming pace (default: 100)")
    kinds = bench.add_subparsers(dest="bench_command", required=False, prog=bench.prog,
                                 title="instead of running a benchmark")
    compare = kinds.add_parser("compare", help="show two runs side by side (B relative to A)",
                               description="Show two runs side by side: throughputs, goodput, failures and latency "
                                           "(mean, p50, p99), with B's value relative to A's. A run is a "
                                           "summary.json, a sweep.json or the --out directory of either; two "
                                           "sweeps over the same load compare point by point.")
    compare.add_argument("first", type=Path, metavar="A.json",
                         help="the baseline: a summary.json, a sweep.json, or a bench --out directory")
    compare.add_argument("second", type=Path, metavar="B.json", help="the run to compare with it, of the same kind")
    bench.usage = ("%(prog)s (--model MODEL | --mock) (--concurrency N[,N...] | --rate R[,R...])\n"
                   "       [--requests N] [--duration S] [options]\n"
                   "       %(prog)s compare A.json B.json")


# The options of one workload only, and their defaults: the other workload refuses them (a
# benchmark that quietly ignored --seed or --slo would record figures it did not measure).
_SINGLE_ONLY = {"requests": None, "duration": None, "warmup": 0, "input_tokens": 128, "output_tokens": 128,
                "prefix_tokens": 0,
                "slo": None, "seed": 0, "burstiness": 1.0, "max_concurrency": None}
_TRACES_ONLY = {"traces": 50, "strategy": "nudge", "max_turns": 8}


def run_bench_command(args: argparse.Namespace) -> int:
    """Send single-turn streamed requests of a given size in a closed loop (--concurrency) or an open loop
    (--rate); report TTFT, TPOT, ITL and end-to-end latency, throughput and goodput. Metric definitions:
    open_strawberry.bench.metrics. With compare, show two earlier runs side by side instead.
    """
    if args.bench_command == "compare":
        return _bench_compare(args.first, args.second)
    from open_strawberry.bench.mock_process import mock_server_process
    from open_strawberry.mock import MockConfig

    loads, percentiles, slo = _checked(args)
    with writing(args.out):  # now, not after a benchmark of many minutes
        args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:  # the mock stops on every way out (see mock_server_process)
        model = args.model
        if args.mock:
            mock = MockConfig(ttft_s=args.mock_ttft_ms / 1000, tokens_per_s=args.mock_tokens_per_s)
            mock.check()
            url = stack.enter_context(mock_server_process(mock))
            model = f"mock:bench@{url}/v1"
        model = _with_base_url(model, args.base_url)
        if args.workload == "traces":
            return _run_traces(args, model, int(loads[0]), percentiles)
        return _run_single(args, model, loads, percentiles, slo)


def _checked(args: argparse.Namespace) -> tuple[list[float], list[float], dict[str, float]]:
    """Check every option before anything starts (the mock, a connection, a file); fill in
    the defaults of the workload's own options. Returns the loads, percentiles and SLOs."""
    if args.concurrency is not None and args.rate is not None:
        raise ConfigurationError("give --concurrency (closed loop) or --rate (open loop), not both")
    loads = _loads(args)
    try:
        percentiles = [float(p) for p in args.percentiles.split(",")]
    except ValueError:
        raise ConfigurationError(f"--percentiles takes numbers like 50,90,99, not {args.percentiles!r}") from None
    if not all(0 <= p <= 100 for p in percentiles):
        raise ConfigurationError(f"--percentiles lie between 0 and 100, not {args.percentiles}")
    slo = _slo(args.slo) if args.slo is not None else {}
    mine, theirs = (_TRACES_ONLY, _SINGLE_ONLY) if args.workload == "traces" else (_SINGLE_ONLY, _TRACES_ONLY)
    given = [f"--{name.replace('_', '-')}" for name in theirs if getattr(args, name) is not None]
    if given:
        other = "single-turn" if args.workload == "traces" else "traces"
        raise ConfigurationError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the {other} "
                                 f"workload only, not to --workload {args.workload}")
    for name, default in mine.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.workload == "traces":
        if args.rate is not None or len(loads) != 1:
            raise ConfigurationError("the traces workload runs a closed loop: give one --concurrency "
                                     "(traces in flight)")
        check_count("--traces", args.traces)
        check_count("--max-turns", args.max_turns)
    else:
        points: list[float | None] = [*loads] or [None]  # with no load, the plan says what is missing
        for load in points:  # every point of a sweep
            _plan(args, load).check()
    if args.mock:
        check_number("--mock-ttft-ms", args.mock_ttft_ms)
        check_number("--mock-tokens-per-s", args.mock_tokens_per_s)
    elif not args.model:
        raise ConfigurationError("give --model (or --mock)")
    else:
        _with_base_url(args.model, args.base_url)
    check_output_dir("--out", args.out)
    return loads, percentiles, slo


def _loads(args: argparse.Namespace) -> list[float]:
    """The values of --concurrency (whole numbers, at least 1) or --rate (above 0)."""
    closed = args.concurrency is not None
    option, text = ("--concurrency", args.concurrency) if closed else ("--rate", args.rate)
    if text is None:
        return []
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ConfigurationError(f"{option} {text!r} holds no number")
    loads = []
    for part in parts:
        try:
            value = int(part) if closed else float(part)
        except ValueError:
            kind = "whole numbers" if closed else "numbers"
            raise ConfigurationError(f"{option} takes {kind} (a comma list sweeps), not {part!r}") from None
        if closed:
            check_count(option, int(value))
        else:
            check_number(option, value, low_open=True)
        loads.append(float(value))
    return loads


def _slo(text: str) -> dict[str, float]:
    slo = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        try:
            target = float(value) if equals else math.nan
        except ValueError:
            target = math.nan
        if not (math.isfinite(target) and target > 0):
            raise ConfigurationError(f"--slo takes pairs like ttft=500,e2e=5000 (milliseconds above 0), "
                                     f"not {part!r}")
        slo[name.strip()] = target
    unknown = sorted(set(slo) - {"ttft", "tpot", "e2e"})
    if unknown:
        raise ConfigurationError(f"--slo knows ttft, tpot and e2e, not {', '.join(unknown)}")
    return slo


def _with_base_url(model: str, base_url: str | None) -> str:
    """``model``, checked, its server replaced by ``base_url`` when one is given."""
    from open_strawberry.backends.models import parse_model

    spec = parse_model(model)
    return f"{spec.provider}:{spec.model}@{base_url}" if base_url else model


def _plan(args: argparse.Namespace, load: float | None) -> BenchPlan:
    from open_strawberry.bench import BenchPlan

    return BenchPlan(concurrency=int(load) if args.concurrency and load is not None else None,
                     rate=load if args.rate else None, burstiness=args.burstiness,
                     max_concurrency=args.max_concurrency, requests=args.requests, duration_s=args.duration,
                     warmup=args.warmup, input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                     seed=args.seed, prefix_tokens=args.prefix_tokens)


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments, for the run's metadata: those of its workload only."""
    other = _SINGLE_ONLY if args.workload == "traces" else _TRACES_ONLY
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in other}


def _run_traces(args: argparse.Namespace, model: str, concurrency: int, percentiles: list[float]) -> int:
    import anyio

    from open_strawberry.bench.report import brief_traces, write_trace_outputs
    from open_strawberry.bench.traces import run_trace_bench

    with writing(args.out):
        document = anyio.run(lambda: run_trace_bench(model, args.out, traces=args.traces, concurrency=concurrency,
                                                     strategy=args.strategy, max_turns=args.max_turns,
                                                     percentiles=percentiles))
        write_trace_outputs(args.out, document, _arguments(args))
    print("\n".join(brief_traces(document, args.out / "report.md")))
    return 0


def _run_single(args: argparse.Namespace, model: str, loads: list[float], percentiles: list[float],
                slo: dict[str, float]) -> int:
    import dataclasses

    import anyio

    from open_strawberry.backends.capacity import probe_capacity
    from open_strawberry.backends.models import create_backend, parse_model
    from open_strawberry.bench import run_bench, summarize
    from open_strawberry.bench.calibrate import size_prompt
    from open_strawberry.bench.report import brief, write_outputs, write_sweep

    ignore_eos = parse_model(model).api == "openai"  # an OpenAI-compatible field; others refuse it
    size = anyio.run(lambda: size_prompt(parse_model(model), input_tokens=args.input_tokens,
                                         prefix_tokens=args.prefix_tokens))
    capacity = anyio.run(lambda: probe_capacity(parse_model(model)))
    # a chat template without a system role gets the prompt's system part in its user turn
    folded: dict[str, Any] = {"system_role": False} if capacity and capacity.system_role is False else {}
    prompt = {"input_tokens": args.input_tokens, "prefix_tokens": args.prefix_tokens, "sized_by": size.source}
    load_name = "concurrency" if args.concurrency else "rate"
    points: list[tuple[float, dict[str, Any]]] = []
    for value in loads:
        point = dataclasses.replace(_plan(args, value), ignore_eos=ignore_eos, size=size)
        out = args.out if len(loads) == 1 else args.out / f"{load_name}-{value:g}"

        async def go(point: BenchPlan = point) -> tuple[list[RequestRecord], ClientHealth]:
            backend = create_backend(model, max_connections=max(point.concurrency or 0, point.max_concurrency or 0,
                                                                256), **folded)
            try:
                return await run_bench(point, backend)
            finally:
                await backend.aclose()

        records, health = anyio.run(go)
        summary = {**summarize(records, percentiles=percentiles, slo_ms=slo), "prompt": prompt}
        with writing(out):
            document = write_outputs(out, records, summary, health, {**_arguments(args), load_name: value})
        points.append((value, summary))
        print(f"{load_name} {value:g}: " + "\n".join(brief(document, out / "report.md")), flush=True)
    if len(points) > 1:
        with writing(args.out):
            write_sweep(args.out, load_name, points)
        print(f"sweep report: {args.out}/sweep.md (and sweep.json; compare two sweeps with bench compare DIR DIR)")
    return 0


def _bench_compare(first: Path, second: Path) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from open_strawberry.bench.compare import compared_points, compared_rows, load_run

    a, b = load_run(first), load_run(second)
    console = Console()
    for point, left, right in compared_points(a, b):
        title = f"bench compare: {point}" if point else "bench compare"
        table = Table("metric", f"A: {escape(str(first))}", f"B: {escape(str(second))}", "B / A", title=title,
                      title_justify="left")
        for name, value_a, value_b, ratio in compared_rows(left, right):
            table.add_row(name, _show(value_a), _show(value_b), "—" if ratio is None else f"{ratio:.3f}")
        console.print(table)
    for run, other in ((a, b), (b, a)):
        alone = sorted(value for value in run.points.keys() - other.points.keys() if value is not None)
        if alone:
            shown = ", ".join(f"{value:g}" for value in alone)
            console.print(f"only in {escape(str(run.path))}: {run.load} {shown}", highlight=False)
    return 0


def _show(value: Any) -> str:
    from rich.markup import escape  # a string from the file is shown as it is, never read as markup

    if value is None:
        return "—"
    return f"{value:,.2f}" if isinstance(value, float) else escape(str(value)[:60])
