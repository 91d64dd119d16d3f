"""``view``: the trace browser and the playground in the browser; and ``generate --ui``'s monitor.

The web server lives in :mod:`open_strawberry.ui`, imported only when a command serves it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from open_strawberry.errors import ConfigurationError
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary, generate

__all__ = ["add_view", "generate_with_monitor", "parse_prices", "run_view"]


def add_view(commands: Any) -> None:
    view = commands.add_parser(
        "view", help="browse a traces file and try models in a playground, in the browser",
        description="Serve the trace browser on TRACES (finished, or still being written: new lines appear as "
                    "they come) and the playground, on 127.0.0.1. Open the printed URL (it holds the server's "
                    "token). The playground's keys come from this process's environment. Ctrl-C stops.")
    view.add_argument("traces", nargs="?", type=Path, help="a traces file (JSONL); without it, only the playground")
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    view.add_argument("--port", type=int, default=8780, help="port (default: 8780; 0: any free port)")
    view.add_argument("--allow-remote", action="store_true",
                      help="allow listening on an address other machines can reach (prints a warning)")
    view.add_argument("--no-playground", dest="playground", action="store_false", help="serve the browser only")
    view.add_argument("--save-to", type=Path, default=Path("playground.jsonl"),
                      help="traces file the playground's 'save' appends to (default: playground.jsonl)")
    view.add_argument("--model", default="mock:reasoner", help="the playground's model to start with")
    view.add_argument("--open", action="store_true", help="open the page in a web browser")


def run_view(args: argparse.Namespace) -> int:
    from open_strawberry.ui import open_viewer

    if args.traces is not None and not args.traces.exists():
        raise ConfigurationError(f"{args.traces}: no such traces file")

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_viewer(args.traces, playground=args.playground, save_to=args.save_to, host=args.host,
                                   port=args.port, allow_remote=args.allow_remote,
                                   default_model=args.model) as server:
                print(f"open-strawberry view: serving {server.url}", flush=True)
                print("(Ctrl-C stops)", file=sys.stderr, flush=True)
                if args.open:
                    webbrowser.open(server.url)
                async for _ in signals:
                    break

    anyio.run(serve)
    return 0


def parse_prices(specs: list[str] | None) -> dict[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` (prices per million input and output tokens) as ``{model: (in, out)}``."""
    prices = {}
    for spec in specs or ():
        model, _, pair = spec.rpartition("=")
        given, _, taken = pair.partition(",")
        try:
            prices[model] = (float(given), float(taken))
        except ValueError:
            raise ConfigurationError(f"--ui-price {spec!r}: write MODEL=INPUT,OUTPUT, prices per million tokens "
                                     "(e.g. anthropic:claude-3-5-sonnet-latest=3,15)") from None
        if not model:
            raise ConfigurationError(f"--ui-price {spec!r}: name the model before '='")
    return prices


async def generate_with_monitor(config: GenerateConfig, *, port: int, prices: dict[str, tuple[float, float]],
                                on_progress: Callable[[Progress], None]) -> RunSummary:
    """``generate --ui``: the run with its monitor (and a browser of its traces file) on
    127.0.0.1; the server stops when the run ends, and the page keeps the final figures."""
    from open_strawberry.ui import open_monitor

    async with open_monitor(port=port, traces=config.out, title=f"generate {config.problems}",
                            prices=prices) as monitor:
        print(f"open-strawberry generate: watch the run at {monitor.url}", file=sys.stderr, flush=True)
        options = monitor.generate_options()
        feed = options.pop("on_progress")

        def progress(snapshot: Progress) -> None:
            on_progress(snapshot)
            feed(snapshot)

        return await generate(config, on_progress=progress, handle_signals=True, **options)
