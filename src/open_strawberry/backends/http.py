"""What the native clients share: one pooled aiohttp session, error mapping, retry hints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import msgspec

from open_strawberry.backends.base import Secret
from open_strawberry.backends.headers import parse_rate_limits, retry_hints
from open_strawberry.backends.sse import SSEDecoder, SSEEvent
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.errors import (
    BackendClosedError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    StreamError,
    error_for_status,
)
from open_strawberry.messages import RateLimits

__all__ = ["ErrorBody", "HTTPBackend", "stream_error"]

T = TypeVar("T")
_READ_BUFFER = 4 * 2**20  # long contexts stream back long lines; 4 MiB per read


class ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: ErrorBody | str | None = None
    message: str | None = None  # some servers put the message at the top level


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


class HTTPBackend:
    """Base of the native clients: one ``aiohttp.ClientSession`` per backend, opened on
    first use, with a connection pool of ``max_connections`` kept alive between calls.

    A backend goes unopened → opened (first call) → closed (:meth:`aclose`, or leaving
    ``async with``), like httpx's client. Its creator owns it and closes it; a closed backend
    refuses calls with :class:`BackendClosedError` and never opens a new session.
    :meth:`aclose` is idempotent.

    ``timeout_s`` bounds the wait for each read (a stalled stream fails after it), not the
    whole call, which may legitimately stream for minutes.
    """

    provider = "http"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: Secret | None = None,
        provider: str | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_connections: int = 1024,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        if provider is not None:
            self.provider = provider
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=timeout_s)
        self._max_connections = max_connections
        self._extra_headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    def _auth_headers(self) -> dict[str, str]:
        return {}

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called; a closed backend refuses calls."""
        return self._closed

    def _session_or_open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise BackendClosedError(f"{self!r} was closed by its owner and takes no more calls",
                                     provider=self.provider)
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                read_bufsize=_READ_BUFFER,
                headers={"content-type": "application/json", **self._auth_headers(), **self._extra_headers},
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session and refuse further calls; closing twice is harmless."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> HTTPBackend:
        if self._closed:
            raise BackendClosedError(f"{self!r} was closed and cannot be reopened", provider=self.provider)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _post(self, path: str, body: bytes) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST ``body``; yield a response with a success status, or raise the mapped error."""
        try:
            async with self._session_or_open().post(self.base_url + path, data=body) as response:
                if response.status >= 400:
                    raise await self._status_error(response)
                yield response
        except BackendError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError) as exc:
            raise self._map_exception(exc) from exc

    async def _fetch(self, path: str, body: bytes, decoder: msgspec.json.Decoder[T]) -> tuple[T, RateLimits | None,
                                                                                             Stopwatch]:
        """A non-streamed call: the decoded answer, the budgets its headers reported, and its
        timing (the whole answer is its first and only chunk)."""
        clock = Stopwatch()
        async with self._post(path, body) as response:
            rate_limits = parse_rate_limits(response.headers)
            raw = await response.read()
            clock.chunk()
            return decoder.decode(raw), rate_limits, clock

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[SSEEvent]:
        """The SSE events of a streamed response; a stream cut mid-event raises StreamError."""
        decoder = SSEDecoder()
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                yield event
        if decoder.pending:
            raise StreamError("the stream ended in the middle of an event", provider=self.provider)

    async def _status_error(self, response: aiohttp.ClientResponse) -> BackendError:
        raw = await response.read()
        message = raw.decode(errors="replace")[:500] or response.reason or "no body"
        try:
            envelope = _error_decoder.decode(raw)
            if isinstance(envelope.error, ErrorBody) and envelope.error.message:
                message = envelope.error.message
            elif isinstance(envelope.error, str):
                message = envelope.error
            elif envelope.message:
                message = envelope.message
        except msgspec.DecodeError:
            pass
        wait, should = retry_hints(response.headers)
        error = error_for_status(response.status)(
            message,
            provider=self.provider,
            status=response.status,
            request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            retry_after=wait,
            should_retry=should,
        )
        error.rate_limits = parse_rate_limits(response.headers)
        return error

    def _map_exception(self, exc: BaseException) -> BackendError:
        if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
            return BackendTimeoutError(f"timed out: {exc or type(exc).__name__}", provider=self.provider)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return StreamError(f"the response ended early: {exc}", provider=self.provider)
        if isinstance(exc, msgspec.DecodeError):
            return StreamError(f"malformed JSON from the server: {exc}", provider=self.provider)
        return BackendConnectionError(f"{type(exc).__name__}: {exc}", provider=self.provider)


def stream_error(provider: str, error: Any) -> BackendError:
    """The error for an ``error`` object that arrived inside a stream."""
    kind = getattr(error, "type", None) or ""
    message = getattr(error, "message", None) or str(error)
    cls: type[BackendError] = StreamError
    if "rate_limit" in kind:
        cls = error_for_status(429)
    elif "overloaded" in kind:
        cls = error_for_status(529)
    elif kind in ("invalid_request_error", "authentication_error", "permission_error", "not_found_error"):
        cls = error_for_status({"invalid_request_error": 400, "authentication_error": 401,
                                "permission_error": 403, "not_found_error": 404}[kind])
    return cls(f"error in stream: {message}", provider=provider)
