"""Serving an aiohttp application in the caller's event loop: the one way the mock server
and the UI start a site.

:func:`bind_listener` binds the address first, so the caller knows the URL before it builds
the application (a part that shows its own address gets it when it is made, not assigned
later); :func:`open_site` serves an application on that listener until the block ends, then
stops it and closes every connection (waiting at most ``shutdown_timeout`` for handlers).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from aiohttp import web
from aiohttp.log import server_logger

__all__ = ["Listener", "bind_listener", "open_site"]


@dataclass(frozen=True)
class Listener:
    """A bound socket and the address to reach it at (``http://host:port``, IPv6 in brackets)."""

    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"


async def bind_listener(host: str, port: int) -> Listener:
    """Bind ``host:port`` (``port=0``: any free port; a name with several addresses, such as
    ``localhost``, on the first it resolves to); the caller closes ``listener.sock``
    (``with listener.sock:``). An address that cannot be bound raises :class:`OSError`."""
    found = await anyio.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not found:
        raise OSError(f"no address for {host!r}")
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # a restarted server may take its port back at once, as aiohttp does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    return Listener(sock, bound_host, bound_port)


@asynccontextmanager
async def open_site(app: web.Application, listener: Listener, *, shutdown_timeout: float,
                    logger: logging.Logger = server_logger) -> AsyncIterator[None]:
    """Serve ``app`` on ``listener``; yields once it accepts connections. On the way out the
    site stops, the app's ``on_shutdown`` and ``cleanup_ctx`` run, and every connection is
    closed. A handler whose client goes away is cancelled (``handler_cancellation``).
    ``logger`` gets aiohttp's reports of requests it could not handle (default: aiohttp's)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=shutdown_timeout, logger=logger)
    await runner.setup()
    try:
        await web.SockSite(runner, listener.sock).start()
        yield
    finally:
        await runner.cleanup()
