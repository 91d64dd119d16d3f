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
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec

from open_strawberry.messages import record_decoder
from open_strawberry.ui.contract import Facets, RecordView, TraceItem

__all__ = ["TraceIndex", "TracePage", "TraceQuery"]

UNREADABLE = "unreadable"
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
                 poll_s: float = 1.0) -> None:
        self.path = Path(path)
        self.chunk_lines = chunk_lines
        self.scan_lines = scan_lines
        self.poll_s = poll_s
        self._lock = threading.Lock()  # one thread at a time reads or grows the arrays
        self._reset()

    def _reset(self) -> None:
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file indexed
        self._end = 0  # bytes of the file indexed (always at a line's end)
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
        """Index up to ``max_lines`` more complete lines; True when the end of the file was reached."""
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                if self._identity is not None:
                    self._reset()
                self.caught_up = True
                return True
            identity = (stat.st_dev, stat.st_ino)
            if identity != self._identity or stat.st_size < self._end:
                self._reset()
                self._identity = identity
            if stat.st_size == self._end:
                self.caught_up = True
                return True
            read = 0
            with self.path.open("rb") as file:
                file.seek(self._end)
                for raw in file:
                    if not raw.endswith(b"\n"):
                        break  # a line still being written: next time
                    offset = self._end
                    self._end += len(raw)
                    self._line += 1
                    if raw.strip():
                        self._add(raw, offset)
                    read += 1
                    if max_lines is not None and read >= max_lines:
                        self.caught_up = False
                        return False
            self.caught_up = True
            return True

    def _add(self, raw: bytes, offset: int) -> None:
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
        with self._lock:
            return self._query(query)

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
                raw = file.readline()
                read += 1
                if needle is not None and needle not in raw.lower():
                    continue
                items.append(self._item(here, raw))
        return TracePage(items=items, next=position if position < count else None, scanned_to=position,
                         indexed=count, caught_up=self.caught_up)

    def _item(self, position: int, raw: bytes) -> TraceItem:
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
        """The whole record at index ``position``; None past the end."""
        with self._lock:
            if not 0 <= position < len(self.offsets):
                return None
            offset, line = self.offsets[position], self.lines[position]
        with self.path.open("rb") as file:
            file.seek(offset)
            raw = file.readline()
        try:
            record: dict[str, Any] = msgspec.to_builtins(record_decoder.decode(raw))
        except msgspec.DecodeError as exc:
            return RecordView(index=position, line=line, unreadable=str(exc),
                              raw=raw[:20_000].decode("utf-8", errors="replace"))
        return RecordView(index=position, line=line, record=record)

    def facets_sync(self, problems: int = 500) -> Facets:
        """Counts by status and grade, the models, and up to ``problems`` problem ids."""
        with self._lock:
            return Facets(path=str(self.path), indexed=len(self.offsets), caught_up=self.caught_up,
                          statuses=dict(self.statuses), correct=dict(self.corrects),
                          models=list(self._values["model"]), problems=self._values["problem"][:problems],
                          problem_count=len(self._values["problem"]))

    async def query(self, query: TraceQuery) -> TracePage:
        return await anyio.to_thread.run_sync(self.query_sync, query)

    async def record(self, position: int) -> RecordView | None:
        return await anyio.to_thread.run_sync(self.record_sync, position)

    async def facets(self) -> Facets:
        return await anyio.to_thread.run_sync(self.facets_sync)
