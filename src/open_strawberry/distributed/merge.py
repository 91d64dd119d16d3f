"""Shard files into the traces file: every pair once, whatever was killed when.

The driver holds the lock of ``--out`` for the whole run. It merges a shard file only while
holding that shard's lock too (a worker still writing it, say one left over from a driver that
was killed, is waited for), appends the records whose pair ``--out`` lacks, flushes them to
disk, and only then deletes the shard file. Killed in the middle, it leaves at worst a torn
last line in ``--out`` (cut off by the next run, as every resume does) and the shard file still
in place, which the next run merges again, skipping the pairs already there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import TraceRecord, record_decoder
from open_strawberry.traces.files import manifest_path
from open_strawberry.traces.lock import locked_traces_file

__all__ = ["merge_shard", "salvage_shards", "waiting_for_lock"]


@contextlib.contextmanager
def waiting_for_lock(path: Path, *, holder: str, wait_s: float) -> Iterator[None]:
    """Hold the lock of the traces file ``path``, waiting up to ``wait_s`` for another process
    (a worker that has not yet been stopped) to let it go; ConfigurationError after that."""
    deadline = time.monotonic() + wait_s
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(locked_traces_file(path, holder=holder))
                break
            except ConfigurationError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.2)
        yield


def merge_shard(source: Path, out: Path, done: set[tuple[str, int]], *,
                observe: Callable[[TraceRecord], None] | None = None, lock_wait_s: float = 60.0) -> int:
    """Append to ``out`` the records of the shard file ``source`` whose pair is not in ``done``
    (which gains them), then delete ``source`` and its manifest; returns how many were added.

    The caller holds the lock of ``out``; this takes the lock of ``source``. A last line without
    its newline (a worker killed mid-write) is left out: that pair was never finished.
    ``observe`` sees each record added.
    """
    added = 0
    with waiting_for_lock(source, holder=f"merging into {out}", wait_s=lock_wait_s):
        if source.exists():
            with out.open("ab") as file:
                for line, record in _records(source):
                    key = (record.problem_id, record.sample)
                    if key in done:
                        continue
                    file.write(line)
                    done.add(key)
                    added += 1
                    if observe is not None:
                        observe(record)
                file.flush()
                os.fsync(file.fileno())
        for path in (source, manifest_path(source)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return added


def salvage_shards(shard_dir: Path, out: Path, done: set[tuple[str, int]], *,
                   observe: Callable[[TraceRecord], None] | None = None, lock_wait_s: float = 60.0) -> int:
    """Merge every shard file left under ``shard_dir`` by an earlier run (a killed driver, an
    interrupt), and remove the folders they were in; returns how many records were added.
    ``observe`` sees each record added."""
    added = 0
    if not shard_dir.is_dir():
        return 0
    for source in sorted(shard_dir.glob("*/shard-*.jsonl")):
        added += merge_shard(source, out, done, observe=observe, lock_wait_s=lock_wait_s)
    for folder in sorted(shard_dir.iterdir()):
        if folder.is_dir():
            for leftover in folder.iterdir():  # markers, locks of dead workers, temporary files
                if leftover.is_file():
                    leftover.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
    with contextlib.suppress(OSError):
        shard_dir.rmdir()
    return added


def _records(path: Path) -> Iterator[tuple[bytes, TraceRecord]]:
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return  # torn: the worker was killed while writing it
            if not line.strip():
                continue
            try:
                yield line, record_decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ConfigurationError(f"{path}:{number}: not a trace record ({exc})") from None
