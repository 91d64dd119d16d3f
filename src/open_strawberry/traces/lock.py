"""One run per traces file: an exclusive lock beside it (``<out>.lock``) for the run's life.

A second run on the same file would resume from the same finished pairs and write every
remaining pair twice, so it is refused at once, with the other run's process id and command
named. The lock is the operating system's (``flock``): a run that is killed, even with
SIGKILL, releases it, and the stale file left behind locks nothing. The command written in the
lock file, and shown in the refusal, is redacted (a URL's password, a key typed on the line).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from open_strawberry.errors import ConfigurationError
from open_strawberry.redact import redact

__all__ = ["lock_path", "locked_traces_file"]


def lock_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def locked_traces_file(out: str | os.PathLike[str], *, holder: str | None = None) -> Iterator[Path]:
    """Hold the lock of the traces file ``out`` for the block; ConfigurationError if another
    process holds it. ``holder`` (default: this process's command line) is written, redacted, in
    the lock file so the refusal can say who has it."""
    path = lock_path(out)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = redact(os.read(fd, 4096).decode(errors="replace").strip()) or "another process"
            os.close(fd)
            raise ConfigurationError(f"{out} is being written by another run ({other}); wait for it to finish "
                                     "or write to another file") from None
        except OSError:
            os.close(fd)
            raise
        # the file may have been removed by the previous holder between our open and our lock:
        # then we hold a lock on a file nobody else will open; take the lock of the current one
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, redact(f"pid {os.getpid()}: {holder or ' '.join(sys.argv)}").encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still holding the lock, so no one locks the removed file unseen
        os.close(fd)
