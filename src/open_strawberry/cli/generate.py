"""``generate``: traces for a problems file, here, on Ray (``--ray``) or watched in the
browser (``--ui``).

Cheap to import: the pipeline, Ray and the web server are imported when the command runs. So
the help shows :class:`~open_strawberry.pipeline.GenerateConfig`'s defaults as written here
(tests/cli/test_help.py holds them to the config's); an option left out stays None and the
config (or the ``--config`` file) decides.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_strawberry.cli.checks import check_count, check_output_file
from open_strawberry.cli.options import GRADERS, flag_names, parse_prices, settle_optional_values
from open_strawberry.cli.status import run_status
from open_strawberry.errors import ConfigurationError

if TYPE_CHECKING:
    from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary

__all__ = ["add_parsers", "generate_with_monitor", "run_generate"]


def add_parsers(commands: Any) -> None:
    gen = commands.add_parser("generate", run=run_generate, help="generate traces for a problems file")
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
    option("--model", help="provider:model[@base_url] (default: mock:reasoner, the mock LLM: started for the run "
                           "when none listens on 127.0.0.1:8765)")
    option("--out", help="traces file (default: traces.jsonl)")
    option("--samples", type=int, help="traces per problem (default: 1)")
    option("--max-traces", type=int,
           help="traces in flight (default: 256; at most one a slot where the server states its slots)")
    option("--max-concurrency", type=int, help="LLM calls in flight (default: learned, or adaptive for local servers)")
    option("--rpm", type=float, help="requests per minute allowed (default: learned from the server's headers)")
    option("--tpm", type=float, help="tokens per minute allowed (default: learned)")
    option("--input-tpm", type=float, help="input tokens per minute (Anthropic; default: learned)")
    option("--output-tpm", type=float, help="output tokens per minute (Anthropic; default: learned)")
    option("--strategy", choices=["nudge", "verify"], help="prompt strategy (default: nudge)")
    option("--max-turns", type=int, help="assistant turns before a trace stops (default: 12)")
    option("--final-every", type=int, help="ask for a final answer every N turns (default: 3)")
    option("--verify-every", type=int, help="critique the window every N turns, 0 for never (default: 0)")
    option("--verify-window", type=int, help="assistant turns the verifier reads (default: 3)")
    option("--verifier-model", help="model for the verifier (default: the same as --model)")
    option("--veto-below", type=float, help="verifier score under which a final answer is sent back "
                                            "(default: 0.5)")
    option("--temperature", type=float, help="sampling temperature (default: 0.7)")
    option("--max-tokens", type=int, help="output tokens per turn (default: 1024)")
    option("--max-trace-tokens", type=int, help="token budget per trace, thinking included (default: none)")
    option("--reasoning-effort", help="thinking effort sent to OpenAI-compatible servers: low, medium, high, none...")
    option("--thinking-budget", type=int, help="Anthropic extended thinking: budget_tokens per turn (>= 1024, "
                                               "below --max-tokens; temperature 1)")
    option("--reasoning-history", choices=["auto", "keep", "drop"],
           help="send earlier turns' thinking back: auto (as the provider wants: Anthropic's blocks, vLLM's "
                "reasoning, llama.cpp's reasoning_content), keep, drop (default: auto)")
    option("--verifier-thinking", action=argparse.BooleanOptionalAction, default=None,
           help="show the verifier each turn's thinking too (default: off)")
    option("--seed", type=int, help="seed for sampling and prompt draws (default: 0)")
    option("--grader", help=f"{', '.join(GRADERS)}: the grader of problems that name none (default: auto)")
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
    option("--timeout-s", type=float, help="read timeout per call (default: 600)")
    _add_batch_options(option)
    option("--ray", nargs="?", const="", metavar="ADDRESS",
           help="make the traces on a Ray cluster, in shards: ADDRESS (host:port, ray://host:10001, auto), or with "
                "no value RAY_ADDRESS, else a local cluster of its own on 127.0.0.1 (auto: the one running on this "
                "machine); with no PROBLEMS "
                "after it, its value is PROBLEMS (needs pip install -e '.[ray]')")
    option("--ray-workers", type=int, metavar="N",
           help="with --ray: shards made at once, one CPU each (default: the cluster's CPUs)")
    option("--ray-shards", type=int, metavar="N",
           help="with --ray: parts the (problem, sample) pairs are split into (default: --ray-workers; at most "
                "the pairs to make and 10,000)")
    option("--progress", action=argparse.BooleanOptionalAction, default=None,
           help="show the live progress display (default: when stderr is a terminal)")
    option("--ui", nargs="?", const=0, metavar="PORT",  # a port, or PROBLEMS: see settle_optional_values
           help="watch the run in the browser: serve a live monitor on 127.0.0.1 (PORT; default any free one) "
                "and print its URL; at a terminal it stays up after the run until Ctrl-C")
    _add_price_options(option)


def _add_price_options(option: Callable[..., Any]) -> None:
    option("--price", action="append", metavar="MODEL=IN,OUT",
           help="price per million input and output tokens of a model, for the cost in the summary and the "
                "monitor (repeatable)")
    option("--ui-price", action="append", metavar="MODEL=IN,OUT",
           help="price per million input and output tokens of a model, for the monitor's cost alone (repeatable; "
                "wins over --price there)")


def _add_batch_options(option: Callable[..., Any]) -> None:
    option("--batch", action=argparse.BooleanOptionalAction, default=None,
           help="send the model's calls through its provider's batch API (openai:, anthropic:, mock): half the "
                "price, but each turn is a round that can take up to 24 h; a rerun polls what was sent instead of "
                "paying again (default: off)")
    option("--batch-poll-s", type=float, help="with --batch: first interval between polls of a batch, doubling "
                                              "up to 16 times it (default: 30)")
    option("--batch-price", action="append", metavar="MODEL=IN,OUT",
           help="batch price per million input and output tokens of a model, for the tokens of calls that went "
                "through a batch API (repeatable; default: half its --price)")


def _generate_config(args: argparse.Namespace) -> GenerateConfig:
    import msgspec

    from open_strawberry.pipeline import GenerateConfig, load_config

    config = load_config(args.config) if args.config else GenerateConfig()
    settle_optional_values(args, problems_elsewhere=bool(config.problems))
    given = {name: value for name, value in vars(args).items()
             if name in GenerateConfig.__struct_fields__ and value is not None}
    merged = msgspec.structs.replace(config, **given)
    with flag_names(given, fields=GenerateConfig.__struct_fields__, config_file=args.config):
        merged.check()
    # before any call: a traces file that cannot be written, or that would be written into an input
    check_output_file("--out", merged.out, inputs=[("the problems file", Path(merged.problems)),
                                                          ("the config file", args.config)])
    return merged


def run_generate(args: argparse.Namespace) -> int:
    """Generate reasoning traces. Every option can also be set in a TOML file (--config) under the same name with
    underscores; options on the command line win. A rerun of the same command resumes: finished (problem,
    sample) pairs are skipped.
    """
    import anyio

    from open_strawberry.cli.progress import ProgressDisplay, print_summary
    from open_strawberry.pipeline import generate

    config = _generate_config(args)
    _check_ray_options(args)
    # the summary's prices (None, none given: it shows no cost), and the monitor's
    prices = parse_prices("--price", args.price) or None
    batch_prices = parse_prices("--batch-price", args.batch_price) or None
    monitor_prices = {**(prices or {}), **parse_prices("--ui-price", args.ui_price)}
    display = ProgressDisplay(f"generate {config.problems}", force=bool(args.progress))
    if args.progress is False:
        display.enabled = False

    title = f"open-strawberry generate ({config.strategy})"
    shown: list[RunSummary] = []  # the summary, once printed while the monitor stays up

    async def hold(summary: RunSummary, url: str) -> None:
        """``--ui`` at a terminal: the summary, then the monitor up until Ctrl-C (or SIGTERM)."""
        display.__exit__(None, None, None)  # the live display ends with the run (a second exit does nothing)
        print_summary(summary, title=title)
        shown.append(summary)
        await until_interrupted(f"open-strawberry generate: run finished; the monitor stays up at {url} until "
                                "Ctrl-C")

    async def run() -> RunSummary:
        with display:
            if args.ui is not None:  # the web server is loaded only for --ui
                return await generate_with_monitor(config, port=args.ui, prices=monitor_prices,
                                                   on_progress=display.update, summary_prices=prices,
                                                   batch_prices=batch_prices,
                                                   hold=hold if sys.stdin is not None and sys.stdin.isatty() else None)
            if args.ray is not None:  # Ray is loaded only for --ray
                from open_strawberry.distributed import generate_on_ray

                return await generate_on_ray(config, address=args.ray or None, workers=args.ray_workers,
                                             shards=args.ray_shards, on_progress=display.update,
                                             handle_signals=True, log_level=args.log_level, log_json=args.log_json)
            return await generate(config, on_progress=display.update, handle_signals=True, prices=prices,
                                  batch_prices=batch_prices)

    summary = anyio.run(run)
    if not shown:
        print_summary(summary, title=title)
    return run_status(summary, max_failed_share=config.max_failed_share)


def _check_ray_options(args: argparse.Namespace) -> None:
    for option, value in (("--ray-workers", args.ray_workers), ("--ray-shards", args.ray_shards)):
        if value is not None and args.ray is None:
            raise ConfigurationError(f"{option} needs --ray")
        check_count(option, value)
    if args.ray is not None and (args.price or args.batch_price):
        raise ConfigurationError("--price and --batch-price price the summary of a run here; for a run on Ray (--ray), "
                                 "price its traces file with stats --price")
    if args.ray is not None and args.batch:
        raise ConfigurationError("--batch runs here, one journal beside --out: it cannot be spread over Ray (--ray)")
    if args.ray is not None and args.ui is not None:
        raise ConfigurationError("--ui watches a run in this process: it cannot follow a run on Ray (--ray)")


async def generate_with_monitor(config: GenerateConfig, *, port: int, prices: dict[str, tuple[float, float]],
                                on_progress: Callable[[Progress], None],
                                hold: Callable[[RunSummary, str], Awaitable[None]] | None = None,
                                summary_prices: Mapping[str, tuple[float, float]] | None = None,
                                batch_prices: Mapping[str, tuple[float, float]] | None = None) -> RunSummary:
    """``generate --ui``: the run with its monitor (and a browser of its traces file) on
    127.0.0.1. When the run ends (not interrupted) the server stays up while ``hold(summary,
    url)`` runs, so the page can still be opened, with the final figures; with no ``hold`` it
    stops at once, and a line on stderr says how to browse the traces with ``view``.
    ``prices`` price the monitor, ``summary_prices`` the summary (see
    :func:`~open_strawberry.pipeline.generate`), ``batch_prices`` the batched calls of both."""
    from open_strawberry.pipeline import generate
    from open_strawberry.ui import open_monitor

    async with open_monitor(port=port, traces=config.out, title=f"generate {config.problems}",
                            prices=prices, batch_prices=batch_prices) as monitor:
        print(f"open-strawberry generate: watch the run at {monitor.url}", file=sys.stderr, flush=True)
        options = monitor.generate_options()
        feed = options.pop("on_progress")

        def progress(snapshot: Progress) -> None:
            on_progress(snapshot)
            feed(snapshot)

        summary = await generate(config, on_progress=progress, handle_signals=True, prices=summary_prices,
                                 batch_prices=batch_prices, **options)
        if hold is not None and not summary.interrupted:
            await hold(summary, monitor.url)
        else:
            print(f"open-strawberry generate: the monitor has stopped with the run; browse its traces with "
                  f"open-strawberry view {shlex.quote(config.out)}", file=sys.stderr, flush=True)
        return summary


async def until_interrupted(message: str) -> None:
    """Print ``message`` to stderr, then wait for Ctrl-C (SIGINT) or SIGTERM."""
    import signal

    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        print(message, file=sys.stderr, flush=True)
        async for _ in signals:
            break
