"""``view``: the trace browser and the playground in the browser (``generate --ui``'s monitor
is in :mod:`~open_strawberry.cli.generate`).

The web server lives in :mod:`open_strawberry.ui`, imported only when the command serves it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from open_strawberry.errors import ConfigurationError

__all__ = ["add_parsers", "run_view"]


def add_parsers(commands: Any) -> None:
    view = commands.add_parser(
        "view", run=run_view, help="browse a traces file and try models in a playground, in the browser")
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
    """Serve the trace browser on TRACES (finished, or still being written: new lines appear as they come) and the
    playground, on 127.0.0.1. Open the printed URL (it holds the server's token). The playground's keys come
    from this process's environment. Ctrl-C stops.
    """
    import signal
    import webbrowser

    import anyio

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
