"""The ``open-strawberry`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from open_strawberry._version import __version__
from open_strawberry.backends.models import DEFAULT_MOCK_PORT
from open_strawberry.errors import InterruptedRunError, OpenStrawberryError
from open_strawberry.log import configure_logging
from open_strawberry.mock import FaultRates, MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, RunSummary, generate, load_config
from open_strawberry.problems.builtin import BUILTIN_SETS, builtin_problems

__all__ = ["build_parser", "main"]

INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="open-strawberry",
        description="Generate multi-turn reasoning traces with LLMs, at high throughput.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-json", action="store_true", help="write logs as JSON lines (default: readable)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="lowest level to log (default: warning)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_generate(commands)
    _add_demo(commands)
    _add_problems(commands)
    _add_data_commands(commands)
    _add_bench(commands)
    _add_mock_server(commands)
    return parser


def _add_bench(commands: Any) -> None:
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


def _add_data_commands(commands: Any) -> None:
    stats = commands.add_parser("stats", help="pass rates, pass@k, statuses and tokens of a traces file")
    stats.add_argument("traces", type=Path)
    stats.add_argument("--k", type=int, action="append", help="pass@k to report (repeatable; default: 1, 5, 10)")
    stats.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                       help="price per million input and output tokens of a model, for the cost (repeatable)")
    stats.add_argument("--per-problem", action="store_true", help="also list every problem")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")

    export = commands.add_parser("export", help="write SFT or DPO training data from a traces file")
    kinds = export.add_subparsers(dest="kind", metavar="KIND", required=True)
    sft = kinds.add_parser("sft", help="correct traces as {messages: [...]}")
    sft.add_argument("traces", type=Path)
    sft.add_argument("--out", type=Path, required=True)
    sft.add_argument("--format", choices=["messages", "collapsed"], default="messages",
                     help="the whole conversation, or the steps folded into one assistant message (default: messages)")
    dpo = kinds.add_parser("dpo", help="correct/incorrect pairs as {prompt, chosen, rejected}")
    dpo.add_argument("traces", type=Path)
    dpo.add_argument("--out", type=Path, required=True)
    dpo.add_argument("--pairing", choices=["all", "extremes"], default="all",
                     help="all pairs (capped), or the shortest correct against the longest incorrect (default: all)")
    dpo.add_argument("--max-pairs", type=int, default=4, help="pairs per problem at most (default: 4)")
    dpo.add_argument("--format", choices=["collapsed", "multi-turn"], default="collapsed",
                     help="chosen/rejected as one assistant message, or the rest of the conversation")

    select = commands.add_parser("select", help="problems with a pass rate in a range, for the next round")
    select.add_argument("traces", type=Path)
    select.add_argument("--out", type=Path, required=True)
    select.add_argument("--min-pass", type=float, default=0.05, help="lowest pass rate kept (default: 0.05)")
    select.add_argument("--max-pass", type=float, default=0.6, help="highest pass rate kept (default: 0.6)")
    select.add_argument("--exclude", type=Path, action="append", default=[],
                        help="problems or traces file of an earlier round whose problems to leave out (repeatable)")


def _add_generate(commands: Any) -> None:
    defaults = GenerateConfig()
    gen = commands.add_parser(
        "generate", help="generate traces for a problems file",
        description="Generate reasoning traces. Every option can also be set in a TOML file (--config) under the "
                    "same name with underscores; options on the command line win. A rerun of the same command "
                    "resumes: finished (problem, sample) pairs are skipped.")
    gen.add_argument("problems", nargs="?",
                     help="a problems file (JSONL with id, prompt, answer; GSM8K; MATH; Parquet), "
                          "hf:DATASET_OR_DIR, or builtin:NAME[:COUNT]")
    option = gen.add_argument
    option("--config", type=Path, help="a TOML file with any of these options")
    option("--problems-format", choices=["auto", "jsonl", "gsm8k", "math", "parquet", "hf"],
           help="how to read PROBLEMS (default: auto, from the suffix or the first row's fields)")
    option("--id-field", help="field holding the problem id (default: id; missing: FILE-LINE)")
    option("--prompt-field", help="field holding the problem (default: prompt)")
    option("--answer-field", help="field holding the ground truth (default: answer)")
    option("--split", help="dataset split for hf: problems (default: train)")
    option("--model", help=f"provider:model[@base_url] (default: {defaults.model})")
    option("--out", help=f"traces file (default: {defaults.out})")
    option("--samples", type=int, help=f"traces per problem (default: {defaults.samples})")
    option("--max-traces", type=int, help=f"traces in flight (default: {defaults.max_traces})")
    option("--max-concurrency", type=int, help="LLM calls in flight (default: learned, or adaptive for local servers)")
    option("--rpm", type=float, help="requests per minute allowed (default: learned from the server's headers)")
    option("--tpm", type=float, help="tokens per minute allowed (default: learned)")
    option("--input-tpm", type=float, help="input tokens per minute (Anthropic; default: learned)")
    option("--output-tpm", type=float, help="output tokens per minute (Anthropic; default: learned)")
    option("--strategy", choices=["nudge", "verify"], help=f"prompt strategy (default: {defaults.strategy})")
    option("--max-turns", type=int, help=f"assistant turns before a trace stops (default: {defaults.max_turns})")
    option("--final-every", type=int, help=f"ask for a final answer every N turns (default: {defaults.final_every})")
    option("--verify-every", type=int, help="critique the window every N turns, 0 for never (default: 0)")
    option("--verify-window", type=int, help=f"assistant turns the verifier reads (default: {defaults.verify_window})")
    option("--verifier-model", help="model for the verifier (default: the same as --model)")
    option("--veto-below", type=float, help=f"verifier score under which a final answer is sent back "
                                            f"(default: {defaults.veto_below})")
    option("--temperature", type=float, help=f"sampling temperature (default: {defaults.temperature})")
    option("--max-tokens", type=int, help=f"output tokens per turn (default: {defaults.max_tokens})")
    option("--max-trace-tokens", type=int, help="token budget per trace (default: none)")
    option("--seed", type=int, help=f"seed for sampling and prompt draws (default: {defaults.seed})")
    option("--grader", help="numeric, exact, auto or module:function, for problems that name none (default: auto)")
    option("--api-key-env", help="environment variable that holds the API key (default: the provider's usual one)")
    option("--timeout-s", type=float, help=f"read timeout per call (default: {defaults.timeout_s:g})")
    option("--progress", action=argparse.BooleanOptionalAction, default=None,
           help="show the live progress display (default: when stderr is a terminal)")


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the pipeline offline on a built-in problem set (no API key)",
                               description="Start the mock LLM in-process and generate traces for the built-in "
                                           "'mixed' set with both prompt strategies.")
    demo.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where to write (default: out/demo)")
    demo.add_argument("--problems", type=int, default=40, help="problems (default: 40)")
    demo.add_argument("--samples", type=int, default=2, help="traces per problem (default: 2)")
    demo.add_argument("--max-traces", type=int, default=64, help="traces in flight (default: 64)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show the live progress display (default: when stderr is a terminal)")


def _add_problems(commands: Any) -> None:
    problems = commands.add_parser("problems", help="write a built-in problem set as JSONL",
                                   description="Generate a built-in problem set with ground truth.")
    problems.add_argument("name", choices=BUILTIN_SETS)
    problems.add_argument("--count", type=int, default=100, help="how many (default: 100)")
    problems.add_argument("--seed", type=int, default=0)
    problems.add_argument("--out", type=Path, help="file to write (default: standard output)")


def _add_mock_server(commands: Any) -> None:
    mock = commands.add_parser("mock-server", help="serve the mock LLM (OpenAI and Anthropic wire formats)",
                               description="Serve the scripted mock LLM until interrupted. OpenAI clients use "
                                           "http://HOST:PORT/v1, Anthropic clients http://HOST:PORT.")
    mock.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    mock.add_argument("--port", type=int, default=DEFAULT_MOCK_PORT,
                      help=f"port (default: {DEFAULT_MOCK_PORT}; 0 picks a free one)")
    defaults = MockConfig()
    mock.add_argument("--ttft-ms", type=float, default=defaults.ttft_s * 1000, help="time to first token")
    mock.add_argument("--tokens-per-s", type=float, default=defaults.tokens_per_s,
                      help="streaming pace after the first token (0: no pacing)")
    mock.add_argument("--tokens-per-chunk", type=int, default=defaults.tokens_per_chunk)
    mock.add_argument("--jitter", type=float, default=defaults.jitter, help="vary each delay by up to this fraction")
    mock.add_argument("--accuracy", type=float, default=defaults.accuracy, help="share of traces on the right path")
    mock.add_argument("--confident-after", type=int, default=defaults.confident_after,
                      help="steps before the reasoner gives a final answer")
    mock.add_argument("--flavor", choices=["openai", "llamacpp", "ollama"], default=defaults.flavor,
                      help="which server's streaming quirks to mimic")
    mock.add_argument("--seed", type=int, default=defaults.seed)
    for budget, what in (("rpm", "requests"), ("tpm", "tokens"), ("input-tpm", "input tokens"),
                         ("output-tpm", "output tokens")):
        mock.add_argument(f"--{budget}", type=float, default=None, help=f"{what} per minute (default: unlimited)")
    mock.add_argument("--fault-rate", type=float, default=0.0,
                      help="share of requests that fail, spread over every kind of fault (default: 0)")
    mock.add_argument("--stall-s", type=float, default=defaults.stall_s, help="how long a stall fault lasts")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    commands = {"generate": _generate, "demo": _demo, "problems": _problems, "mock-server": _mock_server,
                "stats": _stats, "export": _export, "select": _select, "bench": _bench}
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return commands[args.command](args)
    except InterruptedRunError as exc:
        print(f"open-strawberry: {exc}", file=sys.stderr)
        return INTERRUPTED
    except OpenStrawberryError as exc:
        print(f"open-strawberry: error: {exc}", file=sys.stderr)
        return 1


def _generate_config(args: argparse.Namespace) -> GenerateConfig:
    config = load_config(args.config) if args.config else GenerateConfig()
    given = {name: value for name, value in vars(args).items()
             if name in GenerateConfig.__struct_fields__ and value is not None}
    merged = msgspec.structs.replace(config, **given)
    merged.check()
    return merged


def _generate(args: argparse.Namespace) -> int:
    from open_strawberry.progress import ProgressDisplay, print_summary

    config = _generate_config(args)
    display = ProgressDisplay(f"generate {config.problems}", force=bool(args.progress))
    if args.progress is False:
        display.enabled = False

    async def run() -> RunSummary:
        with display:
            return await generate(config, on_progress=display.update, handle_signals=True)

    summary = anyio.run(run)
    print_summary(summary, title=f"open-strawberry generate ({config.strategy})")
    return _interrupted_status(summary)


def _demo(args: argparse.Namespace) -> int:
    from open_strawberry.demo import run_demo
    from open_strawberry.progress import ProgressDisplay, print_summary

    displays: list[ProgressDisplay] = []

    def progress(strategy: str) -> Any:
        display = ProgressDisplay(f"demo: {strategy}", force=bool(args.progress))
        if args.progress is False:
            display.enabled = False
        display.__enter__()
        displays.append(display)
        return display.update

    try:
        results = anyio.run(lambda: run_demo(args.out_dir, problems=args.problems, samples=args.samples,
                                             max_traces=args.max_traces, seed=args.seed, handle_signals=True,
                                             progress=progress))
    finally:
        for display in displays:
            display.__exit__(None, None, None)
    for strategy, summary in results:
        print_summary(summary, title=f"demo: {strategy} strategy")
    print(f"\nTraces are in {args.out_dir}/ (one JSON object per line); each has a .manifest.json beside it.")
    return _interrupted_status(results[-1][1]) if results else 0


def _interrupted_status(summary: RunSummary) -> int:
    if summary.interrupted:
        print("interrupted: the traces in flight were finished and written; rerun the same command to resume",
              file=sys.stderr)
        return INTERRUPTED
    return 0


def _problems(args: argparse.Namespace) -> int:
    encoder = msgspec.json.Encoder()
    lines = (encoder.encode(problem) + b"\n" for problem in builtin_problems(args.name, args.count, args.seed))
    if args.out is None:
        for line in lines:
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("wb") as file:
            file.writelines(lines)
        print(f"wrote {args.count} {args.name} problems to {args.out}", file=sys.stderr)
    return 0


def _prices(specs: list[str]) -> dict[str, tuple[float, float]]:
    prices = {}
    for spec in specs:
        model, _, pair = spec.rpartition("=")
        try:
            given, taken = (float(part) for part in pair.split(","))
        except ValueError:
            raise OpenStrawberryError(f"--price {spec!r}: write MODEL=INPUT,OUTPUT, prices per million tokens"
                                      ) from None
        prices[model] = (given, taken)
    return prices


def _stats(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from open_strawberry.stats import trace_stats

    stats = trace_stats(args.traces, ks=args.k or (1, 5, 10), prices=_prices(args.price) if args.price else None)
    if args.json:
        payload = msgspec.to_builtins(stats)
        for row, problem in zip(payload["per_problem"], stats.per_problem, strict=True):
            row["pass_rate"] = problem.pass_rate
        if not args.per_problem:
            del payload["per_problem"]
        print(msgspec.json.encode(payload).decode())
        return 0
    console = Console()
    table = Table(title=f"{args.traces}", show_header=False, title_justify="left")
    rows = [("traces", f"{stats.traces:,} over {stats.problems:,} problems"),
            ("status", ", ".join(f"{k} {v:,}" for k, v in sorted(stats.statuses.items())) or "—"),
            ("correct", f"{stats.correct:,} of {stats.traces:,} ({stats.graded:,} graded)")]
    rows += [(f"pass@{k}", f"{value:.1%}") for k, value in stats.pass_at.items()]
    rows += [("mean turns", f"{stats.mean_turns:.2f}"),
             ("tokens", f"{stats.input_tokens:,} in / {stats.output_tokens:,} out"),
             ("cost", "—" if stats.cost is None else f"{stats.cost:,.4f}")]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if args.per_problem:
        problems = Table("problem", "samples", "correct", "pass rate", "mean turns", "mean tokens")
        for p in stats.per_problem:
            problems.add_row(p.problem_id, str(p.samples), str(p.correct), f"{p.pass_rate:.0%}",
                             f"{p.turns / p.samples:.1f}", f"{p.tokens / p.samples:,.0f}")
        console.print(problems)
    return 0


def _export(args: argparse.Namespace) -> int:
    from open_strawberry.exports import export_dpo, export_sft

    if args.kind == "sft":
        counts = export_sft(args.traces, args.out, format=args.format)
        print(f"wrote {counts.written:,} SFT examples from {counts.problems:,} problems to {args.out} "
              f"({counts.skipped:,} of {counts.read:,} traces were not correct)", file=sys.stderr)
    else:
        counts = export_dpo(args.traces, args.out, pairing=args.pairing, max_pairs=args.max_pairs, format=args.format)
        print(f"wrote {counts.written:,} DPO pairs from {counts.problems:,} problems to {args.out} "
              f"({counts.skipped:,} duplicates dropped; {counts.read:,} traces read)", file=sys.stderr)
    return 0


def _select(args: argparse.Namespace) -> int:
    from open_strawberry.exports import select_problems

    counts = select_problems(args.traces, args.out, min_pass=args.min_pass, max_pass=args.max_pass,
                             exclude=args.exclude)
    print(f"selected {counts.written:,} of {counts.problems:,} problems (pass rate {args.min_pass:g}-"
          f"{args.max_pass:g}) into {args.out}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
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


def _mock_server(args: argparse.Namespace) -> int:
    config = MockConfig(ttft_s=args.ttft_ms / 1000, tokens_per_s=args.tokens_per_s,
                        tokens_per_chunk=args.tokens_per_chunk, jitter=args.jitter, accuracy=args.accuracy,
                        confident_after=args.confident_after, flavor=args.flavor, seed=args.seed,
                        rpm=args.rpm, tpm=args.tpm, input_tpm=args.input_tpm, output_tpm=args.output_tpm,
                        faults=FaultRates.spread(args.fault_rate), stall_s=args.stall_s)

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_mock_server(config, host=args.host, port=args.port) as server:
                print(f"mock server listening on {server.url} (OpenAI: {server.openai_base_url}, "
                      f"Anthropic: {server.url})", flush=True)
                async for _ in signals:
                    break

    try:
        anyio.run(serve)
    except OSError as exc:
        print(f"open-strawberry: error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
