"""Server-sent events to browsers, through bounded queues that never slow the sender.

A :class:`Broadcaster` (the package's one fan-out, :class:`~open_strawberry.events.FanOut`,
of encoded messages) feeds a :class:`Channel` per open page. Publishing never blocks: a
channel whose queue is full drops the message and counts it (the page is told, and the next
full snapshot repairs what it missed), so a slow or closed browser costs the run one failed
``send_nowait``.
:func:`serve_channel` writes one channel to one HTTP response until the broadcaster closes
it or the browser goes away.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import anyio
from aiohttp import web

from open_strawberry.events import FanOut, Queue
from open_strawberry.redact import MaskingEncoder

__all__ = ["Broadcaster", "Channel", "serve_channel", "sse_message"]

_encoder = MaskingEncoder()  # a key a server echoed into a reply is masked in what the pages get
HEARTBEAT_S = 15.0  # a comment line this often finds browsers that went away without a word


def sse_message(event: str, data: Any) -> bytes:
    """One SSE message: ``event: NAME`` and ``data:`` one line of JSON (JSON escapes newlines)."""
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


Broadcaster: TypeAlias = FanOut[bytes]  # encoded messages to the pages that watch
Channel: TypeAlias = Queue[bytes]  # one page's queue


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
            batch: list[bytes] | None = [b": keep-alive\n\n"]
            with anyio.move_on_after(HEARTBEAT_S):
                batch = await channel.next_batch()
            if batch is None:
                break
            await response.write(b"".join(batch))
    except (ConnectionResetError, anyio.BrokenResourceError):
        pass  # the browser went away
    finally:
        broadcaster.discard(channel)
        channel.close_reader()
    return response
