"""The Sink: the only writer of the traces file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import anyio

from open_strawberry.messages import TraceRecord, json_encoder
from open_strawberry.runtime.actor import Actor

__all__ = ["JsonlSink"]


class JsonlSink(Actor):
    """Appends one JSON line per finished trace to ``path``.

    Each record is encoded whole and written with a single unbuffered write of the
    complete line, newline included, so a crash or a cancellation between two records
    leaves only complete lines behind. Run it with one worker: it is the file's only writer.
    """

    inputs = (TraceRecord,)
    outputs = ()

    def __init__(self, path: str | os.PathLike[str],
                 observers: Sequence[Callable[[TraceRecord], None]] = ()) -> None:
        self.path = Path(path)
        self.observers = tuple(observers)  # told of each record once it is written
        self.written = 0
        self._file: IO[bytes] | None = None
        self._buffer = bytearray()

    async def setup(self) -> None:
        await anyio.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        self._file = await anyio.to_thread.run_sync(lambda: open(self.path, "ab", buffering=0))  # noqa: SIM115

    async def teardown(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def handle(self, message: TraceRecord) -> None:
        assert self._file is not None, "JsonlSink.handle before setup"
        json_encoder.encode_into(message, self._buffer)
        self._buffer.extend(b"\n")
        with memoryview(self._buffer) as line:
            done = 0
            while done < len(line):  # a raw write may take fewer bytes than offered
                done += self._file.write(line[done:]) or 0
        self.written += 1
        for observer in self.observers:
            observer(message)
