"""The ``open-strawberry`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from open_strawberry._version import __version__
from open_strawberry.cli.bench import add_bench, run_bench_command
from open_strawberry.cli.data import (
    add_data_commands,
    add_problems,
    run_export,
    run_problems,
    run_select,
    run_stats,
)
from open_strawberry.cli.generate import INTERRUPTED, add_demo, add_generate, run_demo_command, run_generate
from open_strawberry.cli.mock_server import add_mock_server, run_mock_server
from open_strawberry.errors import InterruptedRunError, OpenStrawberryError
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
    add_generate(commands)
    add_demo(commands)
    add_problems(commands)
    add_data_commands(commands)
    add_bench(commands)
    add_mock_server(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    commands = {"generate": run_generate, "demo": run_demo_command, "problems": run_problems,
                "mock-server": run_mock_server, "stats": run_stats, "export": run_export, "select": run_select,
                "bench": run_bench_command}
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


if __name__ == "__main__":
    sys.exit(main())
