"""The traces file between runs: what is already done (for resume), repairing a torn last
line, reading records, the run's manifest beside it, and writing derived files whole."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.jsonl import JsonlLine, read_jsonl
from open_strawberry.messages import TraceRecord, record_decoder

__all__ = [
    "failed_path",
    "finished_pairs",
    "manifest_path",
    "read_trace_lines",
    "read_traces",
    "set_aside_failed",
    "write_lines_atomically",
    "write_manifest",
]


class _Key(msgspec.Struct):
    problem_id: str
    sample: int


_key_decoder = msgspec.json.Decoder(_Key)


def finished_pairs(path: str | os.PathLike[str]) -> set[tuple[str, int]]:
    """The ``(problem_id, sample)`` pairs already in the traces file at ``path``.

    A last line without its newline (a run killed mid-write) is cut off, so the file holds
    only complete records; any other unreadable line is an error naming it. Streams the
    file: a million-line file costs one small set.
    """
    path = Path(path)
    if not path.exists():
        return set()
    lines = read_jsonl(path, _key_decoder, torn="truncate", kind="traces file",
                       invalid="not a trace record ({reason}); move the file aside or fix the line")
    return {(line.value.problem_id, line.value.sample) for line in lines}


def read_traces(path: str | os.PathLike[str]) -> Iterator[TraceRecord]:
    """Stream the records of a traces file; a bad line is an error naming the file and line
    (a torn last line, from a run that was killed, is skipped with a warning)."""
    for line in read_trace_lines(path):
        yield line.value


def read_trace_lines(path: str | os.PathLike[str]) -> Iterator[JsonlLine[TraceRecord]]:
    """:func:`read_traces` with each record's line number and byte offset (to seek back to it)."""
    return read_jsonl(path, record_decoder, torn="skip", kind="traces file", invalid="not a trace record ({reason})")


def manifest_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def write_manifest(out: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Write ``<out>.manifest.json`` whole or not at all (see :func:`write_lines_atomically`)."""
    path = manifest_path(out)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    with _replacing(path) as file:
        file.write(text.encode())
    return path


def write_lines_atomically(out: str | os.PathLike[str], lines: Iterable[bytes], *,
                           inputs: Sequence[str | os.PathLike[str]] = ()) -> int:
    """Write ``lines`` to ``out`` whole or not at all; returns how many were written.

    They go to a new temporary file in ``out``'s folder, renamed over ``out`` once the last
    line is on disk. If anything fails first (an error, ``lines`` raising, an interrupt), the
    temporary file is removed and ``out`` is as it was. ``inputs`` are the files ``lines`` are
    made from: when ``out`` is one of them (the same file under any name: a symlink, a hard
    link, another spelling), ConfigurationError, before anything is written.
    """
    out = Path(out)
    for source in inputs:
        if _same_file(out, source):
            raise ConfigurationError(f"{out} is the input file {os.fspath(source)}: write the output to another "
                                     "file, or the input would be lost")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with _replacing(out) as file:
        for line in lines:
            file.write(line)
            written += 1
    return written


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or cannot be a path): not the same file
        return False


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A new file beside ``path``, renamed over it when the block ends, flushed to disk first;
    removed instead when the block raises (an interrupt included). The temporary file gets the
    permissions any new file would (the umask applies), and a name no other writer uses."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class _Status(msgspec.Struct):
    status: str = ""


_status_decoder = msgspec.json.Decoder(_Status)


def failed_path(out: str | os.PathLike[str]) -> Path:
    """Where :func:`set_aside_failed` keeps the failed records of ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".failed.jsonl")


def set_aside_failed(out: str | os.PathLike[str]) -> int:
    """Move the failed records (``status: error``) of the traces file ``out`` to the end of
    :func:`failed_path`, so a resumed run makes those pairs again; returns how many moved.

    Nothing is lost on any path: the failed lines are appended and flushed to disk before the
    traces file is replaced (atomically, by a renamed temporary file) by its other lines.
    """
    out = Path(out)
    kept: list[bytes] = []
    failed: list[bytes] = []
    with out.open("rb") as file:
        for line in file:
            if line.strip():
                (failed if _status_decoder.decode(line).status == "error" else kept).append(line)
    if not failed:
        return 0
    with failed_path(out).open("ab") as aside:
        aside.writelines(failed)
        aside.flush()
        os.fsync(aside.fileno())
    write_lines_atomically(out, kept)
    return len(failed)
