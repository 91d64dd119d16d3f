"""The traces file between runs: what is already done (for resume), repairing a torn last
line, reading records, the run's manifest beside it, and writing derived files whole."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import structlog

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import TraceRecord, record_decoder

__all__ = ["finished_pairs", "manifest_path", "read_traces", "write_lines_atomically", "write_manifest"]

_log = structlog.get_logger("open_strawberry.traces")


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
    done: set[tuple[str, int]] = set()
    if not path.exists():
        return done
    good_end = 0
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                break  # torn: repaired below
            if line.strip():
                try:
                    key = _key_decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise ConfigurationError(
                        f"{path}:{number}: not a trace record ({exc}); move the file aside or fix the line") from None
                done.add((key.problem_id, key.sample))
            good_end += len(line)
    if good_end < path.stat().st_size:
        _log.warning("repaired_torn_line", path=str(path), dropped_bytes=path.stat().st_size - good_end)
        with path.open("r+b") as file:
            file.truncate(good_end)
    return done


def read_traces(path: str | os.PathLike[str]) -> Iterator[TraceRecord]:
    """Stream the records of a traces file; a bad line is an error naming the file and line
    (a torn last line, from a run that was killed, is skipped with a warning)."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the traces file: {exc.strerror or exc}") from None
    with file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                _log.warning("torn_last_line_skipped", path=str(path), line=number)
                return
            try:
                yield record_decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ConfigurationError(f"{path}:{number}: not a trace record ({exc})") from None


def manifest_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def write_manifest(out: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    """Write ``<out>.manifest.json`` atomically (a temporary file renamed over it)."""
    path = manifest_path(out)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)
    return path


def write_lines_atomically(out: str | os.PathLike[str], lines: Iterable[bytes]) -> int:
    """Write to a temporary file renamed over ``out`` at the end: a failed export leaves no half file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".partial")
    written = 0
    with temporary.open("wb") as file:
        for line in lines:
            file.write(line)
            written += 1
    os.replace(temporary, out)
    return written
