"""What the native clients make of a server's errors: the error bodies of the APIs, the error
for a failed status (its message masked and cut, its retry hints read), and the error for an
``error`` event inside a stream."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from open_strawberry.backends.headers import parse_rate_limits, retry_hints
from open_strawberry.errors import BackendError, FatalBackendError, StreamError, error_for_status
from open_strawberry.redact import redact

__all__ = ["ErrorBody", "error_in", "read_up_to", "redirect_error", "request_id", "status_error", "stream_error"]

ERROR_BODY = 64 * 1024  # the most of an error body (or of an unexpected body) that is read
_MESSAGE_CHARS = 2000  # the most of a server's error message that is kept
_RAW_MESSAGE_CHARS = 500  # ... and of an error body that is not JSON (often a proxy's page)


class ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: ErrorBody | str | None = None
    message: str | None = None  # some servers put the message at the top level


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def error_in(raw: bytes) -> ErrorBody | None:
    """The error an error body spells out (``{"error": {...}}``, ``{"error": "..."}`` or
    ``{"message": "..."}``), or None."""
    try:
        envelope = _error_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(envelope.error, ErrorBody) and envelope.error.message:
        return envelope.error
    if isinstance(envelope.error, str) and envelope.error:
        return ErrorBody(message=envelope.error)
    if envelope.message:
        return ErrorBody(message=envelope.message)
    return None


def request_id(response: aiohttp.ClientResponse) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("request-id")


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
    return cls(f"error in stream: {redact(message)[:_MESSAGE_CHARS]}", provider=provider)


async def status_error(response: aiohttp.ClientResponse, provider: str) -> BackendError:
    """The error for a response with a failed status, from its body (read up to ``ERROR_BODY``)
    and headers: its message masked and cut, its retry hints and the budgets it reported."""
    raw = await read_up_to(response, ERROR_BODY)
    error = error_in(raw)
    # masked whole, then cut: the start of a key that was cut off would not be masked
    if error is not None:
        message = redact(error.message)[:_MESSAGE_CHARS]
    else:
        message = redact(raw.decode(errors="replace"))[:_RAW_MESSAGE_CHARS] or response.reason or "no body"
    wait, should = retry_hints(response.headers)
    mapped = error_for_status(response.status)(
        message,
        provider=provider,
        status=response.status,
        request_id=request_id(response),
        retry_after=wait,
        should_retry=should,
    )
    mapped.rate_limits = parse_rate_limits(response.headers)
    return mapped


def redirect_error(response: aiohttp.ClientResponse, provider: str) -> FatalBackendError:
    """The error for a redirect (a 3xx status): never followed, since the request carries the
    API key (``x-api-key`` is not one of the headers an HTTP client drops on the way to another
    host), and a base URL that redirects is wrong in any case. It names the target, masked."""
    target = response.headers.get("location") or "no location given"
    return FatalBackendError(
        f"the server answered {response.status} {response.reason or 'redirect'} to {redact(target)}: not followed "
        "(the API key would go with it); set the base URL to where the API really is",
        provider=provider, status=response.status, request_id=request_id(response))


async def read_up_to(response: aiohttp.ClientResponse, size: int) -> bytes:
    """About ``size`` bytes of the body (fewer when it ends first), as the pieces come."""
    head = b""
    while len(head) < size:
        piece = await response.content.readany()
        if not piece:
            break
        head += piece
    return head
