"""The journal of a batch run: what was submitted, so that a rerun polls instead of paying again.

A JSONL file beside the traces file (:func:`journal_path`: ``<out>.batches.jsonl``), appended
to and flushed to disk at two moments of each batch::

    {"type": "intent", "round": "r3f9...", "requests": [{"custom_id": ..., "key": ...,
     "trace_id": ..., "turn": 2, "kind": "g", "attempt": 1}, ...]}     # before it is sent
    {"type": "submitted", "round": "r3f9...", "batch_id": "batch_abc"}  # once the provider took it

An intent with no ``submitted`` line was never confirmed sent: its requests are sent again.
A torn last line (a kill mid-write) is ignored. The journal is read once when opened; the
run's lock on the traces file keeps a second writer away.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec

__all__ = ["BatchJournal", "JournalRequest", "Sent", "journal_path"]


class JournalRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request of a batch: its ``custom_id`` (``<key>-<attempt>``), and the trace turn it asks."""

    custom_id: str
    key: str
    trace_id: str
    turn: int
    kind: str
    attempt: int


class _Intent(msgspec.Struct, frozen=True, kw_only=True, tag="intent"):
    round: str
    requests: list[JournalRequest]


class _Submitted(msgspec.Struct, frozen=True, kw_only=True, tag="submitted"):
    round: str
    batch_id: str


_Entry = _Intent | _Submitted
_decoder = msgspec.json.Decoder(_Entry)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Sent:
    """The latest attempt at a request key: what it was, and the batch that holds it (None:
    never confirmed sent)."""

    request: JournalRequest
    batch_id: str | None


def journal_path(out: str | Path) -> Path:
    """``<out>.batches.jsonl``, beside the traces file."""
    out = Path(out)
    return out.with_name(out.name + ".batches.jsonl")


class BatchJournal:
    """The journal at ``path``: read on first use (so it may be created before the run claims its
    traces file), appended to from then on; :meth:`close` closes the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._latest: dict[str, JournalRequest] = {}  # {key: its latest attempt}
        self._round_of: dict[str, str] = {}  # {custom_id: round}
        self._batch_of: dict[str, str] = {}  # {round: batch id}
        self._members: dict[str, list[str]] = {}  # {round: custom ids}
        self._loaded = False
        self._file: BinaryIO | None = None

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            return
        for raw in self.path.read_bytes().splitlines():
            try:
                entry = _decoder.decode(raw)
            except msgspec.DecodeError:
                continue  # a torn last line: its write never finished
            if isinstance(entry, _Intent):
                self._members[entry.round] = [r.custom_id for r in entry.requests]
                for request in entry.requests:
                    self._latest[request.key] = request
                    self._round_of[request.custom_id] = entry.round
            else:
                self._batch_of[entry.round] = entry.batch_id

    def latest(self, key: str) -> Sent | None:
        """The latest attempt journaled for ``key``, or None."""
        self._load()
        request = self._latest.get(key)
        if request is None:
            return None
        return Sent(request, self._batch_of.get(self._round_of[request.custom_id]))

    def members(self, batch_id: str) -> list[str]:
        """The custom ids of a journaled batch."""
        self._load()
        rounds = [r for r, b in self._batch_of.items() if b == batch_id]
        return [custom_id for r in rounds for custom_id in self._members.get(r, [])]

    def unconfirmed(self) -> list[str]:
        """The rounds written down as intended but never as submitted (a kill between the two)."""
        self._load()
        return [r for r in self._members if r not in self._batch_of]

    @property
    def batches(self) -> list[str]:
        """Every batch id journaled, oldest first."""
        self._load()
        return list(self._batch_of.values())

    def intend(self, round_id: str, requests: list[JournalRequest]) -> None:
        """Write down ``requests`` before they are sent as round ``round_id``."""
        self._load()
        self._members[round_id] = [r.custom_id for r in requests]
        for request in requests:
            self._latest[request.key] = request
            self._round_of[request.custom_id] = round_id
        self._append(_Intent(round=round_id, requests=requests))

    def submitted(self, round_id: str, batch_id: str) -> None:
        """Write down that the provider took round ``round_id`` as ``batch_id``."""
        self._batch_of[round_id] = batch_id
        self._append(_Submitted(round=round_id, batch_id=batch_id))

    def _append(self, entry: _Entry) -> None:
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(_encoder.encode(entry) + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
