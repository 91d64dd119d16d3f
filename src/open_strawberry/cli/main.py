"""The ``open-strawberry`` command line.

Starting is cheap: a command module imports, at its top, only the standard library,
:mod:`open_strawberry.errors` and the command line's own small modules; the pipeline, the
servers, the SDKs, the ML libraries (and anyio, msgspec, rich) are imported inside the
functions that run a command. So :func:`build_parser` builds the whole
parser at once, from each module's ``add_parsers(commands)``, and ``--help`` (of the program or
of any command) still loads none of them. A module adds a command with
``commands.add_parser(name, run=..., help=...)``: its parser keeps ``run(args) -> exit status``
as the default ``run``, which :func:`main` takes off the namespace and calls, and shows ``run``'s
docstring as the command's description in its ``--help``.
The version is looked up only for ``--version`` (``importlib.metadata`` alone takes longer to
import than the rest of ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from open_strawberry.cli import bench, bootstrap, data, demo, generate, mock_server, serve, train, view
from open_strawberry.cli.status import INTERRUPTED
from open_strawberry.errors import InterruptedRunError, OpenStrawberryError

__all__ = ["build_parser", "main"]


class _VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` to standard output and exits."""

    def __init__(self, option_strings: Sequence[str], dest: str) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from open_strawberry._version import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


class _CommandParser(argparse.ArgumentParser):
    """A command's parser; ``run``, the function that runs the command, is its default ``run``
    and its docstring the command's description (argparse folds its white space)."""

    def __init__(self, *, run: Callable[[argparse.Namespace], int] | None = None, **kwargs: Any) -> None:
        if run is not None:
            kwargs.setdefault("description", run.__doc__)
        super().__init__(**kwargs)
        if run is not None:
            self.set_defaults(run=run)


# Each adds its commands' parsers, in the order --help lists them.
_COMMAND_FAMILIES: tuple[Callable[[Any], None], ...] = (
    generate.add_parsers, demo.add_parsers, data.add_parsers, bench.add_parsers, mock_server.add_parsers,
    train.add_parsers, bootstrap.add_parsers, view.add_parsers, serve.add_parsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="open-strawberry",
        description="Generate multi-turn reasoning traces with LLMs, at high throughput.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--log-json", action="store_true", help="write logs as JSON lines (default: readable)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="lowest level to log (default: warning)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for add_parsers in _COMMAND_FAMILIES:
        add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    0: done; 1: an error, printed as one line ``open-strawberry: error: ...`` that names the
    file, line or option at fault; 2: the command line itself is wrong (argparse's message; it
    raises SystemExit); 130: interrupted (Ctrl-C) at any point, start-up and the final report
    included. Errors in what a command writes come out the same way: one line naming the path.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("open-strawberry: interrupted", file=sys.stderr)
        return INTERRUPTED
    except InterruptedRunError as exc:
        _say(f"open-strawberry: {exc}")
        return INTERRUPTED
    except OpenStrawberryError as exc:
        _say(f"open-strawberry: error: {exc}")
        return 1
    except BrokenPipeError:
        # whoever read our output stopped (`| head`): nothing to tell anyone; the standard output
        # goes to nowhere so that flushing it at exit raises nothing more
        with contextlib.suppress(OSError, ValueError):  # a standard output with no file descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file a command reads or writes that it did not name itself
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _say(f"open-strawberry: error: {where}{exc.strerror or exc}")
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    for token in argv[: argv.index("--") if "--" in argv else len(argv)]:
        name, equals, value = token.partition("=")
        if equals and name.startswith("-") and value == "--":
            # argparse (3.11) drops the "--" and gives the option an empty list, never converted
            parser.error(f"argument {name}: expected one argument, not '--'")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from open_strawberry.log import configure_logging

    configure_logging(json=args.log_json, level=args.log_level)
    run: Callable[[argparse.Namespace], int] = args.run
    del args.run  # the command sees its own options (and the global ones), as it always has
    return run(args)


def _say(message: str) -> None:
    """Print ``message`` to stderr as one line, whatever it holds."""
    print(" ".join(message.split("\n")), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
