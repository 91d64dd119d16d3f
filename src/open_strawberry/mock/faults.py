"""The faults the mock server injects: how often (:class:`FaultRates`) and what each does.

A fault is drawn once per request, after its key and body are checked. A
:class:`StatusFault` answers with an error status instead of a reply. A :class:`ReplyFault`
hits the reply itself: a stream just before chunk ``at`` (its ``strike``), or a
non-streamed body (its ``whole``).

To add a kind of fault, name its rate in :class:`FaultRates` and its behaviour in
:data:`FAULTS`, both in this module; the server and both wire formats pick it up from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import anyio
import msgspec
from aiohttp import web

from open_strawberry.errors import ConfigurationError
from open_strawberry.mock.wire import Frames

__all__ = ["FAULTS", "FaultRates", "ReplyFault", "StatusFault", "Target"]


class FaultRates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Probabilities, per request, of each injected fault (drawn from a seeded generator)."""

    http_500: float = 0.0
    http_503: float = 0.0
    http_529: float = 0.0  # overloaded
    http_429: float = 0.0  # with retry-after
    http_429_bare: float = 0.0  # without any retry hint
    drop_mid_stream: float = 0.0  # the connection is cut after a few chunks
    truncated_sse: float = 0.0  # the stream ends cleanly in the middle of an event
    malformed_chunk: float = 0.0  # a chunk that is not JSON
    stall: float = 0.0  # the server goes silent for ``stall_s`` after a few chunks
    interrupted: float = 0.0  # the role chunk, then the end of the stream with no finish reason

    @classmethod
    def spread(cls, total: float) -> FaultRates:
        """``total`` shared equally by every kind of fault."""
        share = total / len(cls.__struct_fields__)
        return cls(**dict.fromkeys(cls.__struct_fields__, share))

    def check(self) -> None:
        """ConfigurationError naming the fault whose rate is not a probability, or when the
        rates add up to more than 1."""
        for name in self.__struct_fields__:
            rate = getattr(self, name)
            if not (math.isfinite(rate) and 0 <= rate <= 1):
                raise ConfigurationError(f"fault rate {name} must be between 0 and 1, got {rate}")
        total = sum(getattr(self, name) for name in self.__struct_fields__)
        if total > 1 + 1e-9:
            raise ConfigurationError(f"the fault rates add up to {total:g}, more than 1")

    def pick(self, draw: float) -> str | None:
        for name in self.__struct_fields__:
            rate = getattr(self, name)
            if draw < rate:
                return str(name)
            draw -= rate
        return None


@dataclass(frozen=True)
class StatusFault:
    """A fault answered with an error status in place of the reply."""

    status: int
    kind: str  # Anthropic's error type; each wire maps it to its own body
    message: str
    hinted: bool = False  # sends retry-after and retry-after-ms (``fault_retry_after_s``)


@dataclass(frozen=True)
class Target:
    """What a reply fault acts on when it strikes a stream."""

    request: web.Request  # its transport is the connection
    response: web.StreamResponse  # prepared; what came before the strike is written
    frames: Frames  # the wire's framing of this reply
    stall_s: float


class ReplyFault(Protocol):
    """A fault in a reply sent with status 200."""

    @property
    def at(self) -> int:
        """The chunk of a stream it strikes before (0: right after the opening)."""
        ...

    async def strike(self, target: Target) -> bool:
        """Act on the stream; True when the stream is over (ended or cut by the fault)."""
        ...

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        """Act on a non-streamed reply of ``body``: the response to send instead, or None to send it."""
        ...


class _Stall:
    """The server goes silent for ``stall_s``, then carries on."""

    at = 2

    async def strike(self, target: Target) -> bool:
        await anyio.sleep(target.stall_s)
        return False

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        await anyio.sleep(stall_s)
        return None


class _MalformedChunk:
    """One event whose data is not JSON; the stream goes on."""

    at = 2

    async def strike(self, target: Target) -> bool:
        await target.response.write(b"data: {this is not json}\n\n")
        return False

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        return web.Response(body=b"{this is not json}", content_type="application/json")


class _TruncatedSse:
    """The stream ends cleanly in the middle of an event (a body: half of it)."""

    at = 2

    async def strike(self, target: Target) -> bool:
        await target.response.write(b'data: {"id": "cut-off')
        await target.response.write_eof()
        return True

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        return web.Response(body=body[: len(body) // 2], content_type="application/json")


class _DropMidStream:
    """The connection is closed with no end to the stream (or before any response)."""

    at = 2

    async def strike(self, target: Target) -> bool:
        if target.request.transport is None:
            return False
        target.request.transport.close()
        return True

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        if request.transport is None:
            return None
        request.transport.close()
        return web.Response(status=500)


class _Interrupted:
    """What llama-cpp-python does to a stream when another request arrives: the opening (the
    role), then the wire's end of stream (``[DONE]``) with no content and no finish reason.
    A non-streamed reply is not affected."""

    at = 0

    async def strike(self, target: Target) -> bool:
        ending = target.frames.cut_off()
        if ending:
            await target.response.write(ending)
        await target.response.write_eof()
        return True

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        return None


_RATE_LIMITED = "Rate limit reached. Please try again later."

FAULTS: dict[str, StatusFault | ReplyFault] = {
    "http_500": StatusFault(500, "api_error", "The server had an error while processing your request."),
    "http_503": StatusFault(503, "api_error", "The engine is currently overloaded, please try again later."),
    "http_529": StatusFault(529, "overloaded_error", "Overloaded"),
    "http_429": StatusFault(429, "rate_limit_error", _RATE_LIMITED, hinted=True),
    "http_429_bare": StatusFault(429, "rate_limit_error", _RATE_LIMITED),
    "drop_mid_stream": _DropMidStream(),
    "truncated_sse": _TruncatedSse(),
    "malformed_chunk": _MalformedChunk(),
    "stall": _Stall(),
    "interrupted": _Interrupted(),
}
"""{fault name (a field of :class:`FaultRates`): what it does}."""
