"""An incremental Server-Sent Events decoder for streamed LLM responses."""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEEvent"]

SSEEvent = tuple[str, bytes]  # (event name, "" when the stream sent none; data lines joined by "\n")


class SSEDecoder:
    """Turns network chunks, split anywhere, into complete SSE events.

    Handles ``\\n`` and ``\\r\\n`` line ends, comment lines (``: keep-alive``), several
    ``data:`` lines per event, and events cut across chunks. :meth:`feed` returns the
    events completed by a chunk; :attr:`pending` tells whether a partial event is left over
    when the stream ends (a truncated stream), and :attr:`pending_bytes` how big the event
    being read has grown (its reader bounds it: a broken server may send one endless line).
    """

    __slots__ = ("_buffer", "_data", "_data_bytes", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[bytes] = []
        self._data_bytes = 0

    @property
    def pending(self) -> bool:
        return bool(self._buffer.strip() or self._data)

    @property
    def pending_bytes(self) -> int:
        """The size of the event not completed yet: its data lines and its unfinished line."""
        return len(self._buffer) + self._data_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if (not self._buffer and not self._data and not self._event and chunk.startswith(b"data: ")
                and chunk.find(b"\n") == len(chunk) - 2 and chunk.endswith(b"\n\n") and chunk[-3:-2] != b"\r"):
            # the common case when a server streams token by token: one whole data-only event
            return [("", chunk[6:-2])]
        events: list[SSEEvent] = []
        lines = (self._buffer + chunk if self._buffer else chunk).split(b"\n")
        self._buffer = lines.pop()  # the line not finished yet (b"" when the chunk ends one)
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                    self._data_bytes = 0
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                self._data_bytes += len(value)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode()
            # comments (":...") and unknown fields (id:, retry:) are ignored
        return events
