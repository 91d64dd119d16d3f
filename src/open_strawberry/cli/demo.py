"""``open-strawberry demo``: the whole pipeline, offline, against the mock server in-process.

It generates traces for the built-in ``mixed`` problem set (letter counting, arithmetic,
crack-the-code) with both prompt strategies, one file each, and prints their summaries. The
mock server and the pipeline are imported when the demo runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from open_strawberry.cli.checks import check_count, check_output_dir, writing
from open_strawberry.cli.status import interrupted_status

if TYPE_CHECKING:
    from open_strawberry.cli.progress import ProgressDisplay
    from open_strawberry.mock import MockConfig
    from open_strawberry.pipeline import Progress, RunSummary

__all__ = ["add_parsers", "demo_mock", "run_demo", "run_demo_command"]


def add_parsers(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the pipeline offline on a built-in problem set (no API key)",
                               run=run_demo_command)
    demo.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where to write (default: out/demo)")
    demo.add_argument("--problems", type=int, default=40, help="problems (default: 40)")
    demo.add_argument("--samples", type=int, default=2, help="traces per problem (default: 2)")
    demo.add_argument("--max-traces", type=int, default=64, help="traces in flight (default: 64)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the problems and the sampling (default: 0)")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show the live progress display (default: when stderr is a terminal)")


def run_demo_command(args: argparse.Namespace) -> int:
    """Start the mock LLM in-process and generate traces for the built-in 'mixed' set with both prompt strategies."""
    import anyio

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
    return interrupted_status(results[-1][1]) if results else 0


def demo_mock() -> MockConfig:
    """The mock the demo runs against: paced like a fast server, right three times in four."""
    from open_strawberry.mock import MockConfig

    return MockConfig(ttft_s=0.03, tokens_per_s=400, tokens_per_chunk=3, jitter=0.3, accuracy=0.75,
                      confident_after=3)


async def run_demo(out_dir: Path, *, problems: int = 40, samples: int = 2, max_traces: int = 64, seed: int = 0,
                   handle_signals: bool = False,
                   progress: Callable[[str], Callable[[Progress], None] | None] | None = None,
                   ) -> list[tuple[str, RunSummary]]:
    """Run both strategies; ``progress(name)`` may return a progress callback for that run."""
    import anyio

    from open_strawberry.mock import open_mock_server
    from open_strawberry.pipeline import GenerateConfig, generate

    results: list[tuple[str, RunSummary]] = []
    async with open_mock_server(demo_mock()) as server:
        strategies: tuple[tuple[Literal["nudge", "verify"], int], ...] = (("nudge", 0), ("verify", 1))
        for strategy, verify_every in strategies:
            out = out_dir / f"{strategy}.jsonl"
            await anyio.Path(out).unlink(missing_ok=True)
            config = GenerateConfig(problems=f"builtin:mixed:{problems}",
                                    model=f"mock:reasoner@{server.openai_base_url}", out=str(out), samples=samples,
                                    max_traces=max_traces, strategy=strategy, verify_every=verify_every,
                                    max_turns=12, seed=seed)
            summary = await generate(config, on_progress=progress(strategy) if progress else None,
                                     handle_signals=handle_signals)
            results.append((strategy, summary))
            if summary.interrupted:
                break
    return results
