"""The ``open-strawberry`` command line.

Starting is cheap: ``--version`` and ``--help`` import no command's module, so none of the
pipeline, aiohttp, rich, structlog or an SDK. The parser lists each command with its one-line
help from ``_COMMANDS``; a command's own parser is filled in by its module's ``add_*`` function
the first time it is used (to parse its arguments or print its help), and its ``run_*``
function is imported only to run it. The version is looked up only for ``--version``
(``importlib.metadata`` alone takes longer to import than the rest of ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from importlib import import_module
from typing import Any, NamedTuple

from open_strawberry.errors import InterruptedRunError, OpenStrawberryError

__all__ = ["build_parser", "main"]


class _Command(NamedTuple):
    help: str  # the line under COMMAND in --help; the module's add_* function must pass the same
    module: str
    add: str  # add(commands): adds the command's parser (and maybe its siblings') to a subparsers action
    run: str  # run(args) -> exit status


_COMMANDS = {
    "generate": _Command("generate traces for a problems file",
                         "open_strawberry.cli.generate", "add_generate", "run_generate"),
    "demo": _Command("run the pipeline offline on a built-in problem set (no API key)",
                     "open_strawberry.cli.generate", "add_demo", "run_demo_command"),
    "problems": _Command("write a built-in problem set as JSONL",
                         "open_strawberry.cli.data", "add_problems", "run_problems"),
    "stats": _Command("pass rates, pass@k, statuses and tokens of a traces file",
                      "open_strawberry.cli.data", "add_data_commands", "run_stats"),
    "export": _Command("write SFT or DPO training data from a traces file",
                       "open_strawberry.cli.data", "add_data_commands", "run_export"),
    "select": _Command("problems with a pass rate in a range, for the next round",
                       "open_strawberry.cli.data", "add_data_commands", "run_select"),
    "bench": _Command("measure the latency and throughput of an LLM server",
                      "open_strawberry.cli.bench", "add_bench", "run_bench_command"),
    "mock-server": _Command("serve the mock LLM (OpenAI and Anthropic wire formats)",
                            "open_strawberry.cli.mock_server", "add_mock_server", "run_mock_server"),
    "train": _Command("train a model on SFT or DPO data with TRL",
                      "open_strawberry.cli.train", "add_train", "run_train"),
    "model": _Command("turn a GGUF into a trainable checkpoint, or a checkpoint into a GGUF",
                      "open_strawberry.cli.train", "add_model", "run_model"),
    "bootstrap": _Command("train a model round after round on its own best traces",
                          "open_strawberry.cli.bootstrap", "add_bootstrap", "run_bootstrap_command"),
    "view": _Command("browse a traces file and try models in a playground, in the browser",
                     "open_strawberry.cli.view", "add_view", "run_view"),
}


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
    """A command's parser, filled in (by ``fill``) the first time it parses or formats help."""

    def __init__(self, *, fill: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fill = fill

    def _ensure_filled(self) -> None:
        if self.fill is not None:
            self.fill()  # the module's add_parser call for this command sets fill to None
            if self.fill is not None:
                raise RuntimeError(f"{self.prog}: the module that implements the command did not add it")

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        self._ensure_filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._ensure_filled()
        return super().format_usage()

    def format_help(self) -> str:
        self._ensure_filled()
        return super().format_help()


class _Registered:
    """Stands in for the subparsers action while a command module's ``add_*`` function runs:
    ``add_parser`` hands back the parser already registered under that name."""

    # What add_parser may still set on a parser that exists: what takes effect when it formats help.
    LATE_SETTINGS = frozenset({"description", "epilog", "usage", "formatter_class"})

    def __init__(self, parsers: Mapping[str, _CommandParser]) -> None:
        self.parsers = parsers

    def add_parser(self, name: str, *, help: str, **settings: Any) -> _CommandParser:
        if help != _COMMANDS[name].help:
            raise RuntimeError(f"the help of command {name!r} is {help!r} in its module but "
                               f"{_COMMANDS[name].help!r} in open_strawberry.cli.main: make them the same")
        if early := settings.keys() - self.LATE_SETTINGS:
            raise TypeError(f"add_parser({name!r}): {', '.join(sorted(early))} must be given in "
                            "open_strawberry.cli.main, where the command's parser is made")
        parser = self.parsers[name]
        parser.fill = None  # filled by this call's caller, now
        for key, value in settings.items():
            setattr(parser, key, value)
        return parser


def _fill(name: str, parsers: Mapping[str, _CommandParser]) -> None:
    command = _COMMANDS[name]
    getattr(import_module(command.module), command.add)(_Registered(parsers))


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
    for name, command in _COMMANDS.items():
        commands.add_parser(name, help=command.help, fill=partial(_fill, name, commands.choices))
    return parser


_INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT (128 + 2)


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
        return _INTERRUPTED
    except InterruptedRunError as exc:
        _say(f"open-strawberry: {exc}")
        return _INTERRUPTED
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
    command = _COMMANDS[args.command]
    run: Callable[[argparse.Namespace], int] = getattr(import_module(command.module), command.run)
    return run(args)


def _say(message: str) -> None:
    """Print ``message`` to stderr as one line, whatever it holds."""
    print(" ".join(message.split("\n")), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
