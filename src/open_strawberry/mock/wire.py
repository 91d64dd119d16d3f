"""What the mock server asks of a wire format, and the wire-neutral records it hands over.

Each API the mock speaks is one object implementing :class:`Wire`
(:class:`~open_strawberry.mock.openai_wire.OpenAIWire`,
:class:`~open_strawberry.mock.anthropic_wire.AnthropicWire`). A wire decodes a request body
into a :class:`Call`, counts its prompt, writes its error bodies and rate-limit headers, and
frames a :class:`Reply`: as one JSON body, or through :class:`Frames` as the Server-Sent
Events of a stream. The server owns the rest, the same for every wire: admission, budgets,
faults, the reasoner, and the chunk loop that paces a stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec
from aiohttp import web

from open_strawberry.messages import ChatMessage, Role

__all__ = ["Call", "Frames", "PromptTokens", "RateWindow", "Reply", "TextPart", "Wire", "chat_message", "encode",
           "json_response", "join_text"]

Body = TypeVar("Body")  # a wire's own decoding of a request body

encode = msgspec.json.encode


@dataclass(frozen=True, kw_only=True)
class Call(Generic[Body]):
    """One request, as the server needs it whatever the wire: what to answer, and how."""

    body: Body  # the wire's own decoding, for its prompt count and its framing
    model: str
    system: str
    turns: list[tuple[str, str]]  # [(role, text)] of the conversation, for the reasoner
    stream: bool
    max_tokens: int | None
    stops: Sequence[str] = ()
    seed: int | None = None
    fill: bool = False  # vLLM's ignore_eos: write exactly max_tokens tokens
    think: bool = False  # the reply comes with thinking (the wire knows when: mode, request)


@dataclass(frozen=True)
class PromptTokens:
    """A prompt's tokens: those processed afresh, and those read from or written to the cache."""

    uncached: int
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What the server answers to one call; each wire frames it its own way."""

    number: int  # the server's count of replies: each wire makes its reply id from it
    text: str
    finish: Literal["stop", "length"]
    prompt: PromptTokens
    output_tokens: int  # thinking included
    thinking: str = ""  # the reply's thinking, before its text ("" for none)
    thinking_tokens: int = 0


@dataclass(frozen=True)
class RateWindow:
    """The state of one per-minute budget, for the rate-limit headers."""

    name: str  # requests, tokens, input_tokens or output_tokens
    limit: int
    remaining: int
    full_in_s: float  # seconds until the budget is full again


class TextPart(Protocol):
    """A content block of a message, as both wires decode it."""

    @property
    def type(self) -> str: ...

    @property
    def text(self) -> str: ...


def join_text(content: str | Sequence[TextPart] | None) -> str:
    """The text of a message's content: the string, or its text blocks joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if part.type == "text")


_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def chat_message(role: str, text: str) -> ChatMessage:
    """A turn as :mod:`open_strawberry.backends.tokens` counts it (the role only labels it)."""
    return ChatMessage(role=_ROLES.get(role, "user"), content=text)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=encode(payload), content_type="application/json", headers=headers)


class Frames(Protocol):
    """The Server-Sent Events of one streamed reply; each method returns whole events.

    The server's chunk loop sends ``opening()``, then ``thought(text)`` for each chunk of the
    reply's thinking, then ``piece(text)`` for each chunk of its text (with ``keepalive()``
    between some), then ``closing()``; or ``error()`` in place of the rest when the stream is
    to end with an error. The frames close the thinking themselves, at the first piece of text
    or at the closing.
    """

    def opening(self) -> bytes:
        """What comes before the first piece: the role, or the message and its block."""
        ...

    def thought(self, text: str) -> bytes:
        """A chunk of thinking, in the wire's mode."""
        ...

    def piece(self, text: str) -> bytes: ...

    def keepalive(self) -> bytes:
        """A keep-alive between pieces (empty where the wire sends none)."""
        ...

    def error(self) -> bytes:
        """The error event that ends a stream early."""
        ...

    def closing(self) -> bytes:
        """The finish reason, the usage and the end of the stream."""
        ...

    def cut_off(self) -> bytes:
        """How the wire's servers end a stream they abandon (llama-cpp-python: ``[DONE]`` with no
        finish reason); empty where the stream just stops."""
        ...


class Wire(Protocol[Body]):
    """One API the mock speaks: its request body, error bodies, headers and framing.

    ``decode`` raises :class:`msgspec.DecodeError` for a body the API would refuse; every
    other method is pure formatting, except ``prompt_tokens``, which may update a prompt
    cache. Error responses carry only the API's body: the server adds the headers.
    """

    request_id_header: str

    def authorized(self, headers: Mapping[str, str], key: str) -> bool: ...

    def unauthorized(self) -> web.Response: ...

    def decode(self, raw: bytes) -> Call[Body]: ...

    def bad_request(self, problem: str) -> web.Response: ...

    def error(self, status: int, kind: str, message: str) -> web.Response:
        """An error status (``kind``: Anthropic's error type, which each wire maps to its own)."""
        ...

    def rate_limited(self, budget: str, limit: int, cost: int, wait_s: float) -> web.Response:
        """The 429 for a request that ``budget`` cannot pay for."""
        ...

    def rate_headers(self, windows: Sequence[RateWindow]) -> dict[str, str]: ...

    def prompt_tokens(self, call: Call[Body]) -> PromptTokens: ...

    def body(self, call: Call[Body], reply: Reply) -> bytes:
        """The non-streamed response body."""
        ...

    def frames(self, call: Call[Body], reply: Reply) -> Frames: ...

    def models(self, model: str) -> dict[str, Any]:
        """The ``GET /v1/models`` body listing ``model``."""
        ...

