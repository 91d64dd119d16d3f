"""A tiny HTTP server that replays canned responses byte for byte: for wire quirks and
failures the mock server does not produce (error statuses, truncation, bad JSON, stalls)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from aiohttp import web


@dataclass
class Canned:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})
    chunks: Sequence[bytes] = ()
    stall_after: int | None = None  # stop sending (and hold the connection) after this many chunks


@dataclass
class CannedServer:
    url: str
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def open_canned_server(*responses: Canned) -> AsyncIterator[CannedServer]:
    """Serve ``responses`` in order, one per request (the last one repeats)."""
    queue = list(responses)
    served: list[bytes] = []
    release = anyio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        served.append(await request.read())
        canned = queue.pop(0) if len(queue) > 1 else queue[0]
        response = web.StreamResponse(status=canned.status, headers=canned.headers)
        await response.prepare(request)
        for index, chunk in enumerate(canned.chunks):
            if canned.stall_after is not None and index >= canned.stall_after:
                await release.wait()
                break
            await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        server = CannedServer(url=f"http://{host}:{port}")
        server.requests = served
        yield server
    finally:
        release.set()
        await runner.cleanup()


def sse(*data: bytes | str, event: str | None = None) -> list[bytes]:
    """One SSE event per item."""
    prefix = f"event: {event}\n".encode() if event else b""
    return [prefix + b"data: " + (d.encode() if isinstance(d, str) else d) + b"\n\n" for d in data]
