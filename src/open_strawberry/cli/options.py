"""Options that several commands share, read one way everywhere.

* :func:`parse_prices`: ``MODEL=IN,OUT`` prices, for ``stats --price`` and ``generate --ui-price``.
* :func:`flag_names`: a config's check names its fields (``max_traces``); at the command line
  the error names the flag the user typed (``--max-traces``).
* :func:`settle_optional_values`: ``generate --ui`` and ``--ray`` take an optional value, which
  argparse takes from PROBLEMS when the option comes first (``generate --ray p.jsonl``).
* :data:`EXPORT_FORMATS` and :func:`export_format`: the one vocabulary of ``--format`` (export)
  and ``--sft-format`` (bootstrap).
* :data:`GRADERS`: the graders ``--grader`` takes, for the help.
* :func:`whole_numbers`: a list option that is a comma list, repeated, or both (``stats --k``).

Cheap to import (the standard library and :mod:`open_strawberry.errors`), as every command
module is. docs/vocabulary.md tables the options and what they mean in each command.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Literal

from open_strawberry.errors import ConfigurationError

__all__ = ["EXPORT_FORMATS", "GRADERS", "export_format", "flag_names", "parse_prices", "settle_optional_values",
           "sft_format", "whole_numbers"]

# open_strawberry.grading.registry.BUILTIN_GRADERS and the two trusted kinds, for --help without
# importing the graders (a test holds the built-in names to the registry's)
GRADERS = ("auto", "numeric", "exact", "math", "choice", "regex", "judge:MODEL", "module:function")

# --format of export sft and export dpo, --sft-format of bootstrap: the whole conversation
# (multi-turn), or the reasoning steps folded into one assistant message (collapsed)
EXPORT_FORMATS = ("multi-turn", "collapsed")
_FORMAT_ALIASES = {"messages": "multi-turn"}  # export sft's (and bootstrap's) earlier spelling


def export_format(text: str) -> str:
    """The argparse ``type`` of an export format: the earlier spelling ``messages`` reads as
    ``multi-turn``; ``choices`` then refuses anything else."""
    return _FORMAT_ALIASES.get(text, text)


def sft_format(name: str) -> Literal["messages", "collapsed"]:
    """The name :func:`open_strawberry.traces.exports.export_sft` (and the bootstrap config)
    know a format of :data:`EXPORT_FORMATS` by: ``multi-turn`` is their ``messages``."""
    return "collapsed" if name == "collapsed" else "messages"


def whole_numbers(text: str) -> list[int]:
    """The argparse ``type`` (with ``action="extend"``) of an option that takes whole numbers as
    a comma list (``1,8``), repeated, or both; the command checks their range."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"whole numbers, as 1,8 or repeated, not {text!r}") from None


def parse_prices(option: str, specs: Collection[str] | None) -> dict[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` specs (prices per million input and output tokens) as ``{model: (in,
    out)}``. A spec without a model, without two prices, or with a price that is not a finite
    number of at least 0 (NaN, -1, 1e999) is a one-line ConfigurationError naming ``option``."""
    prices = {}
    for spec in specs or ():
        model, _, pair = spec.rpartition("=")
        try:
            given, taken = (float(part) for part in pair.split(","))
        except ValueError:
            raise ConfigurationError(f"{option} {spec!r}: write MODEL=INPUT,OUTPUT, prices per million tokens "
                                     "(e.g. anthropic:claude-3-5-sonnet-latest=3,15)") from None
        if not model.strip():
            raise ConfigurationError(f"{option} {spec!r} names no model: write MODEL=INPUT,OUTPUT")
        if not all(math.isfinite(price) and price >= 0 for price in (given, taken)):
            raise ConfigurationError(f"{option} {spec!r}: prices are numbers of at least 0 (and finite)")
        prices[model] = (given, taken)
    return prices


_FIELD = re.compile(r"(?<![\w-])[a-z][a-z0-9]*(?:_[a-z0-9]+)*(?![\w-])")


@contextlib.contextmanager
def flag_names(given: Collection[str], *, fields: Collection[str] = (),
               config_file: Path | str | None = None) -> Iterator[None]:
    """Around a config's ``check()``: its ConfigurationError names fields (``max_traces must be
    at least 1``); the one raised here names the flag of each field in ``given`` (the fields set
    on the command line: ``--max-traces must be at least 1``). The mapping is the command line's
    convention: field ``a_b`` is option ``--a-b``. An error that leads with one of the config's
    ``fields`` that the ``config_file`` set is prefixed with that file. Plain words (``no
    problems given``) are left alone: a field is renamed where it leads the message, or where
    its name holds an underscore."""
    try:
        yield
    except ConfigurationError as exc:
        message = str(exc)
        first = _FIELD.match(message)
        if config_file is not None and first is not None and first[0] in fields and first[0] not in given:
            raise ConfigurationError(f"{config_file}: {message}") from None

        def flag(match: re.Match[str]) -> str:
            name = match[0]
            renamed = name in given and ("_" in name or match.start() == 0)
            return f"--{name.replace('_', '-')}" if renamed else name

        raise ConfigurationError(_FIELD.sub(flag, message)) from None


def settle_optional_values(args: argparse.Namespace, *, problems_elsewhere: bool) -> None:
    """``generate``'s ``--ui [PORT]`` and ``--ray [ADDRESS]``, put before PROBLEMS, take
    PROBLEMS as their value (``generate --ray p.jsonl``). With no PROBLEMS otherwise (none
    after them, none in ``--config``: ``problems_elsewhere`` false), that value is PROBLEMS and
    the option has no value. ``--ui``'s value, kept, becomes an int port: one that is not a
    port number is a one-line error."""
    if args.problems is None and not problems_elsewhere:
        if args.ray:
            args.problems, args.ray = args.ray, ""
        elif isinstance(args.ui, str) and not args.ui.isdecimal():
            args.problems, args.ui = args.ui, 0
    if isinstance(args.ui, str):
        port = int(args.ui) if args.ui.isdecimal() else -1
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"--ui takes a port number from 0 to 65535 (0: any free one), not {args.ui!r}; "
                                     "the problems file goes before --ui or after its port")
        args.ui = port
