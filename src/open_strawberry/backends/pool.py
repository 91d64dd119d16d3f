"""The connection pool of the native clients, which tells a request whether the connection it
got had served one before (:class:`~open_strawberry.backends.http.HTTPBackend` sends once more
at once when a kept-alive connection turns out stale)."""

from __future__ import annotations

import weakref
from contextvars import ContextVar

import aiohttp

__all__ = ["ConnectionPick", "Pool", "pick"]


class ConnectionPick:
    """Whether one request went out on a connection the pool had kept alive."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


pick: ContextVar[ConnectionPick | None] = ContextVar("open_strawberry_connection_pick", default=None)
"""The pick of the request the calling task is sending, if it asked to be told."""


class Pool(aiohttp.TCPConnector):
    """aiohttp's connection pool, telling the calling task (through its ``pick``) whether the
    connection it hands out has served a request before. (aiohttp's tracing could say so too,
    but it sends a dozen signals with their parameters for every request once it is on.)"""

    def __init__(self, *, limit: int) -> None:
        super().__init__(limit=limit, limit_per_host=limit)
        self._served: weakref.WeakSet[object] = weakref.WeakSet()

    async def connect(self, req: aiohttp.ClientRequest, traces: list[aiohttp.tracing.Trace],
                      timeout: aiohttp.ClientTimeout) -> aiohttp.connector.Connection:  # noqa: ASYNC109 (aiohttp's)
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if protocol is not None:
            current = pick.get()
            if current is not None:
                current.reused = protocol in self._served
            self._served.add(protocol)
        return connection
