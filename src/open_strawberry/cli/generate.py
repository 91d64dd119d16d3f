"""``generate`` and ``demo``: the commands that run the pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec

from open_strawberry.cli.checks import check_count, check_output_dir, check_output_file, writing
from open_strawberry.errors import ConfigurationError
from open_strawberry.pipeline import GenerateConfig, RunSummary, generate, load_config

__all__ = ["INTERRUPTED", "add_demo", "add_generate", "run_demo_command", "run_generate"]

INTERRUPTED = 130
RUN_FAILED = 3


def add_generate(commands: Any) -> None:
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
    option("--max-trace-tokens", type=int, help="token budget per trace, thinking included (default: none)")
    option("--reasoning-effort", help="thinking effort sent to OpenAI-compatible servers: low, medium, high, none...")
    option("--thinking-budget", type=int, help="Anthropic extended thinking: budget_tokens per turn (>= 1024, "
                                               "below --max-tokens; temperature 1)")
    option("--reasoning-history", choices=["auto", "keep", "drop"],
           help="send earlier turns' thinking back: auto (as the provider wants: Anthropic's blocks, vLLM's "
                "reasoning, llama.cpp's reasoning_content), keep, drop (default: auto)")
    option("--verifier-thinking", action=argparse.BooleanOptionalAction, default=None,
           help="show the verifier each turn's thinking too (default: off)")
    option("--seed", type=int, help=f"seed for sampling and prompt draws (default: {defaults.seed})")
    option("--grader", help="numeric, exact, auto or module:function, for problems that name none (default: auto)")
    option("--last-call", action=argparse.BooleanOptionalAction, default=None,
           help="a trace that reaches --max-turns without a final answer is asked once more, for the answer "
                "alone (a turn of kind last_call; default: off)")
    option("--answer-fallback", choices=["none", "last_number"],
           help="grade traces that gave no final answer by the last number of their last reply, when the "
                "ground truth is a number; the record says so (default: none)")
    option("--retry-failed", action="store_true", default=None,
           help="on resume, make the failed traces again (their records move to OUT.failed.jsonl)")
    option("--max-failed-share", type=float,
           help="share of failed traces above which the run counts as failed, exit code 3 (default: 0.1)")
    option("--call-timeout-s", type=float, help="total time per call attempt, however slowly it streams "
                                                "(default: 600)")
    option("--api-key-env", help="environment variable that holds the API key (default: the provider's usual one)")
    option("--timeout-s", type=float, help=f"read timeout per call (default: {defaults.timeout_s:g})")
    option("--ray", nargs="?", const="", metavar="ADDRESS",
           help="make the traces on a Ray cluster, in shards: ADDRESS (host:port, ray://host:10001, auto), or with "
                "no value RAY_ADDRESS, else a cluster on this machine, else a new local one; put it after PROBLEMS "
                "(needs pip install 'open-strawberry[ray]')")
    option("--ray-workers", type=int, metavar="N",
           help="with --ray: shards made at once, one CPU each (default: the cluster's CPUs)")
    option("--ray-shards", type=int, metavar="N",
           help="with --ray: parts the (problem, sample) pairs are split into (default: --ray-workers)")
    option("--progress", action=argparse.BooleanOptionalAction, default=None,
           help="show the live progress display (default: when stderr is a terminal)")
    option("--ui", nargs="?", type=int, const=0, metavar="PORT",
           help="watch the run in the browser: serve a live monitor on 127.0.0.1 (PORT; default any free one) "
                "and print its URL; put it after PROBLEMS")
    option("--ui-price", action="append", metavar="MODEL=IN,OUT",
           help="price per million input and output tokens of a model, for the monitor's cost (repeatable)")


def add_demo(commands: Any) -> None:
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


def _generate_config(args: argparse.Namespace) -> GenerateConfig:
    config = load_config(args.config) if args.config else GenerateConfig()
    given = {name: value for name, value in vars(args).items()
             if name in GenerateConfig.__struct_fields__ and value is not None}
    merged = msgspec.structs.replace(config, **given)
    merged.check()
    # before any call: a traces file that cannot be written, or that would be written into an input
    check_output_file("--out", merged.out, inputs=[("the problems file", Path(merged.problems)),
                                                          ("the config file", args.config)])
    return merged


def run_generate(args: argparse.Namespace) -> int:
    from open_strawberry.cli.progress import ProgressDisplay, print_summary

    config = _generate_config(args)
    _check_ray_options(args)
    display = ProgressDisplay(f"generate {config.problems}", force=bool(args.progress))
    if args.progress is False:
        display.enabled = False

    async def run() -> RunSummary:
        with display:
            if args.ui is not None:  # the web server is loaded only for --ui
                from open_strawberry.cli.view import generate_with_monitor, parse_prices

                return await generate_with_monitor(config, port=args.ui, prices=parse_prices(args.ui_price),
                                                   on_progress=display.update)
            if args.ray is not None:  # Ray is loaded only for --ray
                from open_strawberry.distributed import generate_on_ray

                return await generate_on_ray(config, address=args.ray or None, workers=args.ray_workers,
                                             shards=args.ray_shards, on_progress=display.update,
                                             handle_signals=True, log_level=args.log_level, log_json=args.log_json)
            return await generate(config, on_progress=display.update, handle_signals=True)

    summary = anyio.run(run)
    print_summary(summary, title=f"open-strawberry generate ({config.strategy})")
    return run_status(summary, max_failed_share=config.max_failed_share)


def _check_ray_options(args: argparse.Namespace) -> None:
    for option, value in (("--ray-workers", args.ray_workers), ("--ray-shards", args.ray_shards)):
        if value is not None and args.ray is None:
            raise ConfigurationError(f"{option} needs --ray")
        check_count(option, value)
    if args.ray is not None and args.ui is not None:
        raise ConfigurationError("--ui watches a run in this process: it cannot follow a run on Ray (--ray)")


def run_demo_command(args: argparse.Namespace) -> int:
    from open_strawberry.cli.demo import run_demo
    from open_strawberry.cli.progress import ProgressDisplay, print_summary

    for option, count in (("--problems", args.problems), ("--samples", args.samples),
                          ("--max-traces", args.max_traces)):
        check_count(option, count)
    check_output_dir("--out-dir", args.out_dir)
    with writing(args.out_dir):
        args.out_dir.mkdir(parents=True, exist_ok=True)
    displays: list[ProgressDisplay] = []

    def progress(strategy: str) -> Any:
        display = ProgressDisplay(f"demo: {strategy}", force=bool(args.progress))
        if args.progress is False:
            display.enabled = False
        display.__enter__()
        displays.append(display)
        return display.update

    try:
        with writing(args.out_dir):
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


def run_status(summary: RunSummary, *, max_failed_share: float) -> int:
    """The exit code of a finished run: 3 when it failed (stopped by an error no trace could get
    past, or more than ``max_failed_share`` of its traces failed), 130 when interrupted, else 0."""
    made = summary.written
    if summary.stopped:
        print(f"open-strawberry: error: the run stopped early: {summary.stopped}; fix that, then rerun with "
              "--retry-failed to make the failed traces again", file=sys.stderr)
        return RUN_FAILED
    if made and summary.failed / made > max_failed_share:
        print(f"open-strawberry: error: {summary.failed:,} of {made:,} traces failed (more than "
              f"{max_failed_share:.0%}); see the error field of the records, then rerun with --retry-failed",
              file=sys.stderr)
        return RUN_FAILED
    return _interrupted_status(summary)


def _interrupted_status(summary: RunSummary) -> int:
    if summary.interrupted:
        print("interrupted: the traces in flight were finished and written; rerun the same command to resume",
              file=sys.stderr)
        return INTERRUPTED
    return 0
