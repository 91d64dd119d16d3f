"""Reading JSONL files: the one reader behind every JSONL file the package reads (problems,
traces, earlier rounds' files).

:func:`read_jsonl` streams a file line by line, a :class:`JsonlLine` (line number, byte offset,
decoded value) for each line that is not blank. A line that does not decode is an error that
names the file and the line (``traces.jsonl:12: not a trace record (...)``), raised when the
iteration reaches it: what came before has been yielded already.

What to do with a *torn* last line, one without its newline, depends on where the file comes
from, so the caller says (``torn``):

* ``"keep"``: decode it like any other line: files written by hand or by other tools often
  end without a newline;
* ``"skip"``: leave it out, with a warning, and leave the file as it is: a run killed
  mid-write, read by a tool;
* ``"truncate"``: cut it off the file, with a warning, once the iteration reaches it, so that
  what is appended next starts on a line of its own (resuming a run).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Generic, Literal, NamedTuple, TypeAlias, TypeVar

import msgspec
import structlog

from open_strawberry.errors import ConfigurationError

__all__ = ["JsonlLine", "TornLine", "read_jsonl"]

T = TypeVar("T")

TornLine: TypeAlias = Literal["keep", "skip", "truncate"]

_log = structlog.get_logger("open_strawberry.jsonl")


class JsonlLine(NamedTuple, Generic[T]):
    number: int  # 1-based, counting blank lines too
    offset: int  # of the line's first byte: seek there and readline() to read it again
    value: T


def read_jsonl(path: str | os.PathLike[str], decoder: msgspec.json.Decoder[T], *, torn: TornLine = "keep",
               kind: str = "file", invalid: str = "not valid JSON ({reason})",
               error: type[ConfigurationError] = ConfigurationError) -> Generator[JsonlLine[T], None, None]:
    """Stream the lines of the JSONL file at ``path``, each decoded with ``decoder``; blank
    lines are passed over.

    Errors are ``error`` (a :class:`ConfigurationError`), worded from ``kind`` and ``invalid``:
    ``PATH: cannot read the {kind}: why`` when the file cannot be opened (raised on the first
    ``next``), and ``PATH:LINE: {invalid}`` for a line that does not decode, where
    ``{reason}`` in ``invalid`` stands for the decoder's reason. ``torn`` says what happens to
    a last line without its newline (see the module docstring).

    The file stays open while the iteration goes on; it is closed at the end, on an error, or
    when the iterator is closed (``contextlib.closing`` for an early stop).
    """
    shown = os.fspath(path)
    try:
        file = Path(path).open("rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise error(f"{shown}: cannot read the {kind}: {exc.strerror or exc}") from None
    with file:
        offset = 0
        for number, line in enumerate(file, start=1):
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n") and torn != "keep" and (line.strip() or torn == "truncate"):
                _torn(Path(path), number, start, len(line), torn)
                return
            if not line.strip():
                continue
            try:
                value = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise error(f"{shown}:{number}: {invalid.format(reason=exc)}") from None
            yield JsonlLine(number, start, value)


def _torn(path: Path, number: int, start: int, length: int, torn: TornLine) -> None:
    if torn == "skip":
        _log.warning("torn_last_line_skipped", path=str(path), line=number)
        return
    _log.warning("repaired_torn_line", path=str(path), line=number, dropped_bytes=length)
    with path.open("r+b") as file:
        file.truncate(start)
