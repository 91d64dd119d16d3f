"""The ``open-strawberry`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from open_strawberry._version import __version__
from open_strawberry.backends.models import DEFAULT_MOCK_PORT
from open_strawberry.errors import OpenStrawberryError
from open_strawberry.log import configure_logging
from open_strawberry.mock import FaultRates, MockConfig, open_mock_server

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
        if args.command == "mock-server":
            return _mock_server(args)
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
