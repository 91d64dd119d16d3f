"""An index of a traces file for the trace browser: read in pages, never loaded whole.

:class:`TraceIndex` streams the file once and keeps, per record, only what the filters need
(its byte offset and line number, status, correct, problem and model as small integer codes:
about 30 bytes a record), in compact arrays; problems and models are interned. A page of
results seeks to the offsets of its records and decodes just those lines. :meth:`TraceIndex.run`
keeps the index in step with a growing file (a run still writing it): it reads complete lines
only, in chunks, so a query never waits for more than one chunk, and starts over when the
file is replaced or cut shorter.

Text search reads the candidate lines themselves (after the cheap filters), so one query
reads at most ``scan_lines`` lines and says where it stopped; the page asks for more.
Unreadable lines are listed with status ``unreadable`` rather than stopping the browser.

What a line may cost is capped: a line over ``max_line_bytes`` is never held whole. It is
listed with status ``oversized`` and its size, and shown as its first bytes; while it is
still being written, the index remembers how far it has looked for its end, so every byte of
the file is read once (one refresh reads at most ``read_bytes``). A file that goes away, or
is replaced by a directory, empties the index and sets ``unavailable`` (shown by the page,
logged once); the index starts again when the file comes back. No file error escapes.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import Counter
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, BinaryIO, Literal

import anyio
import anyio.abc
import msgspec
import structlog

from open_strawberry.messages import record_decoder
from open_strawberry.ui.contract import Facets, RecordView, TraceItem

__all__ = ["TraceIndex", "TracePage", "TraceQuery"]

UNREADABLE = "unreadable"
OVERSIZED = "oversized"  # a line over ``max_line_bytes``: listed with its size, never decoded
_BLOCK = 2**20  # what looking for the end of a long line reads at a time
_SHOWN = 20_000  # bytes of an unreadable or oversized line a record view shows
_log = structlog.get_logger("open_strawberry.ui")
_CORRECT = {"true": 1, "false": 0, "none": -1}


class _Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0


class _Error(msgspec.Struct, frozen=True):
    type: str = ""


class _Summary(msgspec.Struct):
    """What the browser lists of a record (the rest of the line is skipped, not built)."""

    trace_id: str = ""
    problem_id: str = ""
    sample: int = 0
    model: str = ""
    strategy: str = ""
    status: str = ""
    correct: bool | None = None
    final_answer: str | None = None
    ground_truth: str = ""
    turns: list[msgspec.Raw] = []
    usage: _Usage = _Usage()
    error: _Error | None = None
    stop_reason: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


_summary_decoder = msgspec.json.Decoder(_Summary)


class TraceQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters of a page of the browser; all optional. ``problem`` matches part of a problem
    id, ``model`` a whole model string, ``text`` anywhere in the record (ASCII letters in any
    case). The page holds up to ``limit`` records from index position ``start`` on."""

    status: str | None = None
    correct: Literal["true", "false", "none"] | None = None
    problem: str | None = None
    model: str | None = None
    text: str | None = None
    start: int = 0
    limit: int = 50


class TracePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[TraceItem]
    next: int | None  # where to continue scanning; None: the end of what is indexed
    scanned_to: int  # index positions before this one were looked at
    indexed: int  # records in the index
    caught_up: bool  # the index has reached the end of the file (as of its last look)


class TraceIndex:
    """See the module docstring. The async methods run the file work in a worker thread."""

    def __init__(self, path: str | os.PathLike[str], *, chunk_lines: int = 100_000, scan_lines: int = 20_000,
                 poll_s: float = 1.0, max_line_bytes: int = 16 * 2**20, read_bytes: int = 64 * 2**20) -> None:
        self.path = Path(path)
        self.chunk_lines = chunk_lines
        self.scan_lines = scan_lines
        self.poll_s = poll_s
        self.max_line_bytes = max_line_bytes
        self.read_bytes = read_bytes
        self.bytes_read = 0  # read from the file while indexing, in all
        self.unavailable: str | None = None  # why the file cannot be read now (gone, a directory ...)
        self._lock = threading.Lock()  # one thread at a time reads or grows the arrays
        self._reset()

    def _reset(self) -> None:
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file indexed
        self._end = 0  # bytes of the file indexed (always at a line's end)
        self._partial = 0  # how far a long unfinished line after _end has been looked through
        self._seen = -1  # the file's size when the index last reached its end
        self._line = 0  # lines of the file indexed, blank ones too
        self.caught_up = False
        self.offsets = array("q")
        self.lines = array("q")
        self.status = array("B")
        self.correct = array("b")
        self.problem = array("i")
        self.model = array("i")
        self._names: dict[str, dict[str, int]] = {"status": {}, "problem": {}, "model": {}}
        self._values: dict[str, list[str]] = {"status": [], "problem": [], "model": []}
        self.oversized: dict[int, int] = {}  # {index position: bytes of its line}
        self.statuses: Counter[str] = Counter()
        self.corrects: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.offsets)

    def _code(self, kind: str, value: str) -> int:
        names = self._names[kind]
        code = names.get(value)
        if code is None:
            code = names[value] = len(names)
            self._values[kind].append(value)
        return code

    # ------------------------------------------------------------------ growing

    def refresh_sync(self, max_lines: int | None = None) -> bool:
        """Index up to ``max_lines`` more complete lines (and at most ``read_bytes`` bytes);
        True when the end of the file was reached. Never raises for the file itself: a file
        gone, replaced by something else or unreadable empties the index and sets ``unavailable``."""
        with self._lock:
            try:
                stat = os.stat(self.path)
                if not S_ISREG(stat.st_mode):
                    self._lost("was replaced by a directory" if S_ISDIR(stat.st_mode) else "is not a regular file")
                    return True
                if (stat.st_dev, stat.st_ino) != self._identity or stat.st_size < self._partial:
                    self._reset()
                    self._identity = (stat.st_dev, stat.st_ino)
                self._found()
                if stat.st_size == self._seen:
                    self.caught_up = True
                    return True
                with self.path.open("rb") as file:
                    self.caught_up = self._read(file, max_lines)
                if self.caught_up:
                    self._seen = stat.st_size
                return self.caught_up
            except OSError as exc:
                self._lost(_why(exc))
                return True

    def _read(self, file: BinaryIO, max_lines: int | None) -> bool:
        """Index complete lines from where the index ends; True at the end of the file. A line
        over ``max_line_bytes`` is never held: its end is looked for in blocks, from where the
        last look stopped (``_partial``), and it is listed as ``oversized`` with its size."""
        file.seek(self._partial)
        budget, lines = self.read_bytes, 0
        while budget > 0:
            if self._partial > self._end:  # inside a long line: look for its end
                budget -= self._skip_long_line(file, budget)
                if self._partial > self._end:
                    return budget > 0  # its end is not written yet (or the budget is spent)
                lines += 1
            else:
                raw = file.readline(self.max_line_bytes + 1)
                budget -= len(raw)
                self.bytes_read += len(raw)
                if raw.endswith(b"\n"):
                    self._line_read(raw)
                    lines += 1
                elif len(raw) > self.max_line_bytes:
                    self._partial = self._end + len(raw)
                    continue
                else:
                    return True  # the end, or a short line still being written: read again next time
            if max_lines is not None and lines >= max_lines:
                return False
        return False

    def _line_read(self, raw: bytes) -> None:
        offset = self._end
        self._end = self._partial = offset + len(raw)
        self._line += 1
        if raw.strip():
            self._add(raw, offset)

    def _skip_long_line(self, file: BinaryIO, budget: int) -> int:
        """Read on (at most ``budget`` bytes, a block at a time) to the end of the long line
        that starts at ``_end``; returns the bytes read."""
        spent = 0
        while spent < budget:
            block = file.read(min(_BLOCK, budget - spent))
            if not block:
                break
            spent += len(block)
            self.bytes_read += len(block)
            newline = block.find(b"\n")
            if newline < 0:
                self._partial += len(block)
                continue
            end = self._partial + newline + 1
            self._add_oversized(self._end, end - self._end)
            self._end = self._partial = end
            self._line += 1
            file.seek(end)
            break
        return spent

    def _lost(self, why: str) -> None:
        """The file cannot be read now: empty the index, say so once."""
        if self.unavailable != why:
            if self._identity is not None or self.unavailable is not None:
                _log.warning("traces file unavailable", path=str(self.path), problem=why)
            self.unavailable = why
        self._reset()
        self.caught_up = True

    def _found(self) -> None:
        if self.unavailable is not None:
            _log.warning("traces file readable again", path=str(self.path))
            self.unavailable = None

    def _add_oversized(self, offset: int, size: int) -> None:
        self.oversized[len(self.offsets)] = size
        self._add(b"", offset, _Summary(status=OVERSIZED))

    def _add(self, raw: bytes, offset: int, summary: _Summary | None = None) -> None:
        if summary is None:
            try:
                summary = _summary_decoder.decode(raw)
            except msgspec.DecodeError:
                summary = _Summary(status=UNREADABLE)
        self.offsets.append(offset)
        self.lines.append(self._line)
        self.status.append(self._code("status", summary.status or UNREADABLE))
        correct = -1 if summary.correct is None else int(summary.correct)
        self.correct.append(correct)
        self.problem.append(self._code("problem", summary.problem_id))
        self.model.append(self._code("model", summary.model))
        self.statuses[summary.status or UNREADABLE] += 1
        self.corrects[{1: "true", 0: "false", -1: "none"}[correct]] += 1

    async def refresh(self) -> None:
        """Index what the file holds now (chunk by chunk, in a worker thread)."""
        while not await anyio.to_thread.run_sync(self.refresh_sync, self.chunk_lines):
            pass

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Index the file, then look for new lines every ``poll_s``, until cancelled."""
        task_status.started()
        while True:
            if await anyio.to_thread.run_sync(self.refresh_sync, self.chunk_lines):
                await anyio.sleep(self.poll_s)

    # ------------------------------------------------------------------ reading

    def query_sync(self, query: TraceQuery) -> TracePage:
        """A page of records; an empty one when the file cannot be read (``unavailable`` says why)."""
        with self._lock:
            try:
                return self._query(query)
            except OSError as exc:
                self._lost(_why(exc))
                return TracePage(items=[], next=None, scanned_to=0, indexed=0, caught_up=True)

    def _query(self, query: TraceQuery) -> TracePage:
        count = len(self.offsets)
        limit = max(1, min(query.limit, 500))
        status = None
        if query.status:
            status = self._names["status"].get(query.status, -1)
        problems = None
        if query.problem:
            wanted = query.problem.lower()
            problems = {code for code, name in enumerate(self._values["problem"]) if wanted in name.lower()}
        model = self._names["model"].get(query.model, -1) if query.model else None
        correct = _CORRECT[query.correct] if query.correct else None
        needle = msgspec.json.encode(query.text)[1:-1].lower() if query.text else None
        items: list[TraceItem] = []
        position = max(0, query.start)
        read = 0
        if position >= count:
            return TracePage(items=items, next=None, scanned_to=count, indexed=count, caught_up=self.caught_up)
        with self.path.open("rb") as file:
            while position < count and len(items) < limit and read < self.scan_lines:
                here = position
                position += 1
                if ((status is not None and self.status[here] != status)
                        or (correct is not None and self.correct[here] != correct)
                        or (model is not None and self.model[here] != model)
                        or (problems is not None and self.problem[here] not in problems)):
                    continue
                if file.tell() != self.offsets[here]:
                    file.seek(self.offsets[here])
                raw = file.readline(min(_SHOWN, self.max_line_bytes) if here in self.oversized
                                    else self.max_line_bytes)
                read += 1
                if needle is not None and needle not in raw.lower():
                    continue
                items.append(self._item(here, raw))
        return TracePage(items=items, next=position if position < count else None, scanned_to=position,
                         indexed=count, caught_up=self.caught_up)

    def _item(self, position: int, raw: bytes) -> TraceItem:
        size = self.oversized.get(position)
        if size is not None:
            summary = _Summary(status=OVERSIZED, error=_Error(f"a line of {size:,} bytes"))
        else:
            try:
                summary = _summary_decoder.decode(raw)
            except msgspec.DecodeError:
                summary = _Summary(status=UNREADABLE)
        return TraceItem(
            index=position, line=self.lines[position], trace_id=summary.trace_id, problem_id=summary.problem_id,
            sample=summary.sample, model=summary.model, strategy=summary.strategy,
            status=summary.status or UNREADABLE, correct=summary.correct, final_answer=summary.final_answer,
            ground_truth=summary.ground_truth, turns=len(summary.turns), input_tokens=summary.usage.input_tokens,
            output_tokens=summary.usage.output_tokens, stop_reason=summary.stop_reason,
            error=summary.error.type if summary.error else None,
            seconds=round(summary.finished_at - summary.started_at, 3) if summary.finished_at else None)

    def record_sync(self, position: int) -> RecordView | None:
        """The whole record at index ``position``; None past the end. A line over
        ``max_line_bytes`` is shown as its first bytes and its size, never decoded whole."""
        with self._lock:
            if not 0 <= position < len(self.offsets):
                return None
            offset, line, size = self.offsets[position], self.lines[position], self.oversized.get(position)
        try:
            with self.path.open("rb") as file:
                file.seek(offset)
                raw = file.readline(min(_SHOWN, self.max_line_bytes) if size is not None else self.max_line_bytes)
        except OSError as exc:
            return RecordView(index=position, line=line, unreadable=f"the traces file {_why(exc)}")
        if size is not None:
            return RecordView(index=position, line=line, raw=raw.decode("utf-8", errors="replace"),
                              unreadable=f"this line holds {size:,} bytes, more than the {self.max_line_bytes:,} "
                                         f"the browser reads of a line: its first {len(raw):,} are shown")
        try:
            record: dict[str, Any] = msgspec.to_builtins(record_decoder.decode(raw))
        except msgspec.DecodeError as exc:
            return RecordView(index=position, line=line, unreadable=str(exc),
                              raw=raw[:_SHOWN].decode("utf-8", errors="replace"))
        return RecordView(index=position, line=line, record=record)

    def facets_sync(self, problems: int = 500) -> Facets:
        """Counts by status and grade, the models, and up to ``problems`` problem ids."""
        with self._lock:
            return Facets(path=str(self.path), indexed=len(self.offsets), caught_up=self.caught_up,
                          unavailable=self.unavailable,
                          statuses=dict(self.statuses), correct=dict(self.corrects),
                          models=list(self._values["model"]), problems=self._values["problem"][:problems],
                          problem_count=len(self._values["problem"]))

    async def query(self, query: TraceQuery) -> TracePage:
        return await anyio.to_thread.run_sync(self.query_sync, query)

    async def record(self, position: int) -> RecordView | None:
        return await anyio.to_thread.run_sync(self.record_sync, position)

    async def facets(self) -> Facets:
        return await anyio.to_thread.run_sync(self.facets_sync)


def _why(exc: OSError) -> str:
    """What is wrong with the traces file, for the page and the log."""
    if isinstance(exc, FileNotFoundError):
        return "is not there (deleted or moved away): waiting for it to come back"
    if isinstance(exc, IsADirectoryError):
        return "was replaced by a directory"
    return f"cannot be read: {exc.strerror or exc}"
