"""What the native clients share: one pooled aiohttp session, error mapping, retry hints, and
the checks that keep a careless or hostile server from hanging a run, filling memory or
leaking a key: a total deadline per attempt, a cap on what a reply may bring, a body that is
not what was asked for (a web page instead of an event stream), error bodies with the keys in
use masked before they become messages, and redirects never followed (the key would go along).

The connection pool lives in :mod:`~open_strawberry.backends.pool`, the reading of error
bodies and statuses in :mod:`~open_strawberry.backends.http_errors`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio
import msgspec

from open_strawberry.backends.base import Secret
from open_strawberry.backends.headers import parse_rate_limits
from open_strawberry.backends.http_errors import (
    ERROR_BODY,
    ErrorBody,
    error_in,
    read_up_to,
    redirect_error,
    request_id,
    status_error,
    stream_error,
)
from open_strawberry.backends.limits import oversized_reply, reply_byte_cap
from open_strawberry.backends.pool import ConnectionPick, Pool
from open_strawberry.backends.pool import pick as current_pick
from open_strawberry.backends.sse import SSEDecoder
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.errors import (
    BackendClosedError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ConfigurationError,
    FatalBackendError,
    StreamError,
)
from open_strawberry.messages import RateLimits
from open_strawberry.redact import redact

# ErrorBody and stream_error: re-exported from http_errors
__all__ = ["ErrorBody", "EventReader", "HTTPBackend", "check_one_authorization", "stream_error"]

T = TypeVar("T")
_READ_BUFFER = 4 * 2**20  # long contexts stream back long lines; 4 MiB per read
_PREVIEW_CHARS = 100  # how much of an unexpected body an error shows
_SSE_FIELDS = (b"data:", b"event:", b":", b"id:", b"retry:")  # how an SSE line starts
_SNIFF = len(b"event:")  # bytes enough to tell an SSE line from anything else
_TRAILER_BYTES = 64 * 1024  # the most read after a stream's last event, to reuse its connection
_TRAILER_WAIT_S = 0.1  # ... and the longest wait for it (servers send it with the last event)


class EventReader(Protocol):
    """What a wire format makes of a streamed reply: its SSE events, one at a time."""

    def event(self, name: str, data: bytes) -> bool:
        """Take one event (its name, "" when none was sent, and its data); True when it was the
        stream's last (``[DONE]``, ``message_stop``): nothing after it is read."""
        ...


class HTTPBackend:
    """Base of the native clients: one ``aiohttp.ClientSession`` per backend, opened on
    first use, with a connection pool of ``max_connections`` kept alive between calls.

    A backend goes unopened → opened (first call) → closed (:meth:`aclose`, or leaving
    ``async with``), like httpx's client. Its creator owns it and closes it; a closed backend
    refuses calls with :class:`BackendClosedError` and never opens a new session.
    :meth:`aclose` is idempotent.

    Three deadlines, each failing the attempt with :class:`BackendTimeoutError` that names it:
    ``connect_timeout_s`` for the connection, ``timeout_s`` for each read (a stalled stream
    fails after it), and ``call_timeout_s`` for the whole attempt, reading the reply included
    (a server that sends a byte now and then keeps every read alive, not the call). A call may
    legitimately stream for many minutes, so ``call_timeout_s`` is generous by default.
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
        call_timeout_s: float = 1800.0,
        max_connections: int = 1024,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        if provider is not None:
            self.provider = provider
        self._api_key = api_key
        for option, seconds in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s),
                                ("call_timeout_s", call_timeout_s)):
            if not seconds > 0:  # NaN too
                raise ConfigurationError(f"{option} must be above 0 seconds (math.inf: no limit), got {seconds}")
        self._timeout = aiohttp.ClientTimeout(total=_or_none(call_timeout_s), sock_connect=_or_none(connect_timeout_s),
                                              sock_read=_or_none(timeout_s))
        self._read_timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._call_timeout_s = call_timeout_s
        self._max_connections = max_connections
        self._extra_headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        check_one_authorization(self.base_url, {**self._auth_headers(), **self._extra_headers}, "an API key is set")

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
            self._session = aiohttp.ClientSession(
                connector=Pool(limit=self._max_connections),
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

    async def _call(self, path: str, body: bytes, read: Callable[[aiohttp.ClientResponse], Awaitable[T]]) -> T:
        """POST ``body`` and return what ``read`` makes of the response (given only with a
        success status); any failure is raised as the mapped :class:`BackendError`. A redirect
        is never followed (the key would go with it): :func:`redirect_error` names its target.

        The whole attempt, ``read`` included, is under ``call_timeout_s`` (aiohttp's total
        timeout, which the body's reads count against): past it, the request is given up (its
        connection closed) and :class:`BackendTimeoutError` raised in its place.
        """
        try:
            async with await self._send(self.base_url + path, body) as response:
                if 300 <= response.status < 400:
                    raise redirect_error(response, self.provider)
                if response.status >= 400:
                    raise await status_error(response, self.provider)
                return await read(response)
        except BackendError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError) as exc:
            raise self._map_exception(exc) from exc

    async def _exchange(self, method: str, path: str, *, data: object = None,
                        headers: Mapping[str, str] | None = None) -> bytes:
        """One plain request to ``path`` (a batch's upload, status or results, not a chat call)
        under the same session, auth and deadlines: the whole body of a success status; any
        failure raised as the mapped :class:`BackendError`. ``path`` may be a whole URL on the
        base URL's host (a ``results_url``); another host is refused, so a key never leaves."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
            raise FatalBackendError(f"the server pointed to {redact(url)}, not on {redact(self.base_url)}: "
                                    "not followed (the API key would go with it)", provider=self.provider)
        session = self._session_or_open()
        try:
            async with session.request(method, url, data=data, headers=headers, allow_redirects=False) as response:
                if 300 <= response.status < 400:
                    raise redirect_error(response, self.provider)
                if response.status >= 400:
                    raise await status_error(response, self.provider)
                return await response.read()
        except BackendError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._map_exception(exc) from exc

    async def _send(self, url: str, body: bytes) -> aiohttp.ClientResponse:
        """POST, sending again at once while the connection that failed was a kept-alive one from
        the pool: llama.cpp's ``llama-server`` closes its end after a streamed reply, and the
        pool may hand out that connection before it has seen the close ("Can not write request
        body"). That request never reached the server. Every idle connection may be stale alike
        (``llama-server`` with four slots leaves four), and each failure drops one, so this ends
        with a fresh connection. A failure on a fresh connection is raised: a server that hangs
        up on new connections, or after reading the request (``ServerDisconnectedError``), is
        not asked again here; that is the limiter's retry, with its backoff."""
        session = self._session_or_open()
        last = self._max_connections  # the pool holds no more stale connections than it holds
        for attempt in range(last + 1):
            pick = ConnectionPick()
            token = current_pick.set(pick)
            try:
                return await session.post(url, data=body, allow_redirects=False)
            except aiohttp.ClientConnectorError:
                raise  # no connection at all: nothing stale about it
            except aiohttp.ClientOSError:
                if not pick.reused or attempt == last:
                    raise
            finally:
                current_pick.reset(token)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _fetch(self, path: str, body: bytes, decoder: msgspec.json.Decoder[T], *,
                     max_tokens: int) -> tuple[T, RateLimits | None, Stopwatch]:
        """A non-streamed call: the decoded answer, the budgets its headers reported, and its
        timing (the whole answer is its first and only chunk).

        The body is read in pieces and given up past :func:`reply_byte_cap` (``max_tokens``);
        a body that is not JSON and says so (a web page) raises :class:`FatalBackendError`.
        """
        clock = Stopwatch()

        async def read(response: aiohttp.ClientResponse) -> tuple[T, RateLimits | None]:
            rate_limits = parse_rate_limits(response.headers)
            raw = await self._read_capped(response, max_tokens)
            clock.chunk()
            try:
                return decoder.decode(raw), rate_limits
            except msgspec.DecodeError:
                if "json" not in response.content_type.lower() and not raw.lstrip().startswith((b"{", b"[")):
                    raise await self._unexpected_body(response, raw, "JSON") from None
                raise  # JSON cut short or garbled: worth another attempt

        parsed, rate_limits = await self._call(path, body, read)
        return parsed, rate_limits, clock

    async def _read_capped(self, response: aiohttp.ClientResponse, max_tokens: int) -> bytes:
        cap = reply_byte_cap(max_tokens)
        declared = response.content_length
        if declared is not None and declared > cap:
            raise oversized_reply(declared, max_tokens, self.provider, in_bytes=True)
        parts: list[bytes] = []
        received = 0
        async for piece in response.content.iter_any():
            received += len(piece)
            if received > cap:
                raise oversized_reply(received, max_tokens, self.provider, in_bytes=True)
            parts.append(piece)
        return b"".join(parts)

    async def _stream(self, path: str, body: bytes, reader: EventReader, *, max_tokens: int) -> RateLimits | None:
        """POST ``body`` for a streamed reply and hand its SSE events to ``reader``, up to the
        stream's last; return the budgets the response headers reported.

        A body that is not an event stream (a web page, a proxy's page: a wrong base URL)
        raises :class:`FatalBackendError` saying what came instead; one with no content type,
        or a wrong one, whose lines are SSE all the same is read. A stream cut mid-event, or
        one event past :func:`reply_byte_cap` (``max_tokens``), raises :class:`StreamError`.
        After the last event, what is left of the body (normally just its end) is read, so
        that the connection goes back to the pool instead of being closed.
        """
        return await self._call(path, body, lambda response: self._read_events(response, reader, max_tokens))

    async def _read_events(self, response: aiohttp.ClientResponse, reader: EventReader,
                           max_tokens: int) -> RateLimits | None:
        rate_limits = parse_rate_limits(response.headers)
        decoder = SSEDecoder()
        cap = reply_byte_cap(max_tokens)
        if response.content_type.lower() != "text/event-stream":
            head = await self._sniff_event_stream(response)
            if self._deliver(decoder, head, reader, cap, max_tokens):
                await _read_to_end(response)
                return rate_limits
        async for chunk in response.content.iter_any():
            if self._deliver(decoder, chunk, reader, cap, max_tokens):
                await _read_to_end(response)
                return rate_limits
        if decoder.pending:
            raise StreamError("the stream ended in the middle of an event", provider=self.provider)
        return rate_limits

    def _deliver(self, decoder: SSEDecoder, chunk: bytes, reader: EventReader, cap: int, max_tokens: int) -> bool:
        """Feed ``chunk`` to the SSE decoder and each event it completes to ``reader``; True
        at the stream's last event."""
        events = decoder.feed(chunk)
        if decoder.pending_bytes > cap:
            raise oversized_reply(decoder.pending_bytes, max_tokens, self.provider, in_bytes=True)
        for name, data in events:
            if len(data) > cap:
                raise oversized_reply(len(data), max_tokens, self.provider, in_bytes=True)
            if reader.event(name, data):
                return True
        return False

    async def _sniff_event_stream(self, response: aiohttp.ClientResponse) -> bytes:
        """The first bytes of a body sent without ``text/event-stream``, when they are SSE lines
        all the same (some servers and proxies send no content type, or a wrong one); else raise
        the error for what came instead."""
        head = b""
        while len(head.lstrip()) < _SNIFF:
            piece = await response.content.readany()
            if not piece:
                break
            head += piece
        start = head.lstrip()
        if not start or start.startswith(_SSE_FIELDS):
            return head
        raise await self._unexpected_body(response, head, "an event stream")

    async def _unexpected_body(self, response: aiohttp.ClientResponse, head: bytes, expected: str) -> BackendError:
        """The error for a success status whose body is not what was asked for: an error the
        body spells out, else a fatal one showing the start of the body, keys masked."""
        raw = head + await read_up_to(response, ERROR_BODY - len(head))
        if "json" in response.content_type.lower():
            error = error_in(raw)
            if error is not None:
                return stream_error(self.provider, error)
        content_type = response.headers.get("content-type") or "no content type"
        text = " ".join(redact(raw.decode(errors="replace")).split())  # masked whole, then cut
        preview = text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "..."
        return FatalBackendError(
            f"the reply is not {expected}: the server sent {content_type}, starting {preview!r}. Is the base URL "
            f"right ({redact(self.base_url)})? A wrong path, or a proxy's or login page, answers like this; "
            "retrying will not help", provider=self.provider, status=response.status, request_id=request_id(response))

    def _map_exception(self, exc: BaseException) -> BackendError:
        detail = redact(str(exc) or type(exc).__name__)
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return BackendTimeoutError(f"no connection within connect_timeout_s={self._connect_timeout_s:g} s "
                                       f"({detail})", provider=self.provider)
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return BackendTimeoutError(f"nothing came for timeout_s={self._read_timeout_s:g} s, the read timeout "
                                       f"({detail})", provider=self.provider)
        if isinstance(exc, TimeoutError):  # aiohttp's total timeout
            return BackendTimeoutError(
                f"the reply was not finished within call_timeout_s={self._call_timeout_s:g} s, the deadline of a "
                "whole attempt (a server that keeps sending a little keeps each read alive, not the call)",
                provider=self.provider)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return StreamError(f"the response ended early: {detail}", provider=self.provider)
        if isinstance(exc, msgspec.DecodeError):
            return StreamError(f"malformed JSON from the server: {detail}", provider=self.provider)
        return BackendConnectionError(f"{type(exc).__name__}: {detail}", provider=self.provider)


def check_one_authorization(base_url: str, headers: Mapping[str, str], what: str) -> None:
    """Refuse a ``base_url`` with a user and password (sent as HTTP basic auth) when ``headers``
    hold an ``Authorization`` of their own (``what`` says where it comes from): both cannot be
    sent, and every call would fail ("Cannot combine AUTHORIZATION header")."""
    if urlsplit(base_url).username is not None and any(name.lower() == "authorization" for name in headers):
        raise ConfigurationError(
            f"the server URL {redact(base_url)} carries a user and password (HTTP basic auth) and {what} (a bearer "
            "token): both would go in the Authorization header; drop one of them")


def _or_none(seconds: float) -> float | None:
    """aiohttp's way of saying "no limit" (it cannot schedule a timer at infinity)."""
    return seconds if math.isfinite(seconds) else None


async def _read_to_end(response: aiohttp.ClientResponse) -> None:
    """Read the rest of a body whose reply is complete: it normally holds nothing but its end.
    A server that goes on sending, or holds the body open, past ``_TRAILER_BYTES`` or
    ``_TRAILER_WAIT_S``, or that breaks the body off (llama-cpp-python does, to a stream it
    cut short with ``[DONE]``), is left: the connection is then closed rather than reused, and
    the reply stands as the events said."""
    content = response.content
    if content.at_eof():
        return
    received = 0
    with anyio.move_on_after(_TRAILER_WAIT_S), contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        while received <= _TRAILER_BYTES:
            piece = await content.readany()
            if not piece:
                return
            received += len(piece)
