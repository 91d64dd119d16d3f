"""Server-sent events to browsers, through bounded queues that never slow the sender.

A :class:`Broadcaster` fans encoded messages out to its :class:`Channel` s, one per open
page. :meth:`Broadcaster.publish` never blocks: a channel whose queue is full drops the
message and counts it (the page is told, and the next full snapshot repairs what it
missed), so a slow or closed browser costs the run one failed ``send_nowait``.
:func:`serve_channel` writes one channel to one HTTP response until the broadcaster closes
it or the browser goes away.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import msgspec
from aiohttp import web
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Broadcaster", "Channel", "serve_channel", "sse_message"]

_encoder = msgspec.json.Encoder()
HEARTBEAT_S = 15.0  # a comment line this often finds browsers that went away without a word


def sse_message(event: str, data: Any) -> bytes:
    """One SSE message: ``event: NAME`` and ``data:`` one line of JSON (JSON escapes newlines)."""
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


class Channel:
    """One page's queue: bounded; what does not fit is dropped and counted in ``dropped``."""

    def __init__(self, buffer: int) -> None:
        self._send: MemoryObjectSendStream[bytes]
        self._receive: MemoryObjectReceiveStream[bytes]
        self._send, self._receive = anyio.create_memory_object_stream[bytes](buffer)
        self.dropped = 0

    def offer(self, message: bytes) -> bool:
        """Queue ``message`` without waiting; False once the page has gone (the channel is dead)."""
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def close(self) -> None:
        """No more messages: the page's stream ends once it has read what is queued."""
        self._send.close()

    async def next_batch(self) -> bytes | None:
        """Everything queued, as one piece (waits for at least one message); None at the end."""
        try:
            pending = [await self._receive.receive()]
        except anyio.EndOfStream:
            return None
        while True:
            try:
                pending.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                return b"".join(pending)

    def close_reader(self) -> None:
        self._receive.close()


class Broadcaster:
    """Fans messages out to channels; see the module docstring."""

    def __init__(self, buffer: int = 64) -> None:
        self.buffer = buffer
        self._channels: set[Channel] = set()
        self._dropped_by_closed = 0
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._channels)

    @property
    def dropped(self) -> int:
        """Messages dropped for slow pages, over the broadcaster's life."""
        return self._dropped_by_closed + sum(channel.dropped for channel in self._channels)

    def open(self, first: Iterable[bytes] = (), *, buffer: int | None = None) -> Channel:
        """A new channel, holding ``first`` before anything published from now on."""
        first = list(first)
        channel = Channel(max(buffer or self.buffer, len(first) + 1))
        for message in first:
            channel.offer(message)
        if self.closed:
            channel.close()
        else:
            self._channels.add(channel)
        return channel

    def discard(self, channel: Channel) -> None:
        if channel in self._channels:
            self._channels.remove(channel)
            self._dropped_by_closed += channel.dropped
        channel.close()

    def publish(self, message: bytes) -> None:
        for channel in list(self._channels):
            if not channel.offer(message):
                self.discard(channel)

    def close(self, last: bytes | None = None) -> None:
        """Send ``last`` to every page (if it fits) and end their streams; later channels end at once."""
        self.closed = True
        for channel in list(self._channels):
            if last is not None:
                channel.offer(last)
            self.discard(channel)


async def serve_channel(request: web.Request, broadcaster: Broadcaster, channel: Channel) -> web.StreamResponse:
    """Write ``channel`` to the browser as ``text/event-stream`` until it ends or the browser leaves.

    Whatever is queued is written in one go; a comment line goes out every
    :data:`HEARTBEAT_S` seconds of silence. The channel is discarded on every way out.
    """
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-store",
                                           "x-accel-buffering": "no"})
    try:
        await response.prepare(request)
        while True:
            batch: bytes | None = b": keep-alive\n\n"
            with anyio.move_on_after(HEARTBEAT_S):
                batch = await channel.next_batch()
            if batch is None:
                break
            await response.write(batch)
    except (ConnectionResetError, anyio.BrokenResourceError):
        pass  # the browser went away
    finally:
        broadcaster.discard(channel)
        channel.close_reader()
    return response
