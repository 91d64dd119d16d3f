"""The ``open-strawberry`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from open_strawberry._version import __version__
from open_strawberry.errors import OpenStrawberryError
from open_strawberry.log import configure_logging

__all__ = ["build_parser", "main"]


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

    demo = commands.add_parser("demo", help="run the pipeline offline on a built-in problem set")
    demo.add_argument("--out", type=Path, default=Path("out/demo-traces.jsonl"),
                      help="traces file to write (default: out/demo-traces.jsonl)")
    demo.add_argument("--problems", type=int, default=200, help="problems to generate (default: 200)")
    demo.add_argument("--samples", type=int, default=4, help="traces per problem (default: 4)")
    demo.add_argument("--max-traces", type=int, default=64, help="traces in flight (default: 64)")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            return _demo(args)
    except OpenStrawberryError as exc:
        print(f"open-strawberry: error: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2


def _demo(args: argparse.Namespace) -> int:
    from open_strawberry.demo import run_demo, summary_json

    summary = anyio.run(lambda: run_demo(args.out, problems=args.problems, samples=args.samples,
                                         max_traces=args.max_traces, seed=args.seed, handle_signals=True))
    print(summary_json(summary))
    print(f"traces written to {args.out}")
    if summary["interrupted"]:
        print("interrupted: the traces in flight were finished and written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
