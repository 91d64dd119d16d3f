"""The Anthropic messages wire format (``POST /v1/messages``), as the mock speaks it.

Prompt caching is simulated from the ``cache_control`` breakpoints of each request, with a
time-to-live (:class:`PromptCache`). Extended thinking as Anthropic's: a request with
``thinking: {"type": "enabled", "budget_tokens": N}`` (N at least 1024 and below
``max_tokens``, temperature 1 if any) gets a signed ``thinking`` block before its text (and a
``redacted_thinking`` block with ``thinking_redacted``); thinking blocks that come back in later
turns are checked (:class:`~open_strawberry.mock.signing.Signer`), and an altered or missing
one is refused with a 400 ``invalid_request_error``. The API has no seed: a call's seed comes in
``metadata.user_id`` as ``open-strawberry-seed-N``
(:data:`~open_strawberry.backends.anthropic_messages.MOCK_SEED_PREFIX`, sent by ``mock-anthropic:``
clients only), so samples of one problem differ as they do on the OpenAI side.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from open_strawberry.backends.anthropic_messages import MOCK_SEED_PREFIX
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.messages import ChatMessage
from open_strawberry.mock import wire
from open_strawberry.mock.signing import Signer

__all__ = ["AnthropicWire", "PromptCache"]


class _Block(msgspec.Struct):
    type: str = "text"
    text: str = ""
    cache_control: dict[str, Any] | None = None
    thinking: str = ""
    signature: str = ""
    data: str = ""


class _ThinkingOption(msgspec.Struct):
    type: str
    budget_tokens: int | None = None


class _Message(msgspec.Struct):
    role: str
    content: str | list[_Block]


class _Metadata(msgspec.Struct):
    user_id: str | None = None


class _MessagesBody(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[_Message]
    system: str | list[_Block] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None
    thinking: _ThinkingOption | None = None
    temperature: float | None = None
    metadata: _Metadata | None = None


_decoder = msgspec.json.Decoder(_MessagesBody)

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
_NO_MESSAGES = estimate_prompt_tokens(())  # what a prompt costs besides its messages


def _error(status: int, kind: str, message: str) -> web.Response:
    return wire.json_response({"type": "error", "error": {"type": kind, "message": message}}, status)


def _blocks(content: str | list[_Block] | None) -> list[_Block]:
    if content is None:
        return []
    return [_Block(text=content)] if isinstance(content, str) else content


def _usage(reply: wire.Reply) -> dict[str, int]:
    return {"input_tokens": reply.prompt.uncached, "cache_creation_input_tokens": reply.prompt.cache_write,
            "cache_read_input_tokens": reply.prompt.cache_read, "output_tokens": reply.output_tokens}


class PromptCache:
    """Anthropic's prompt cache, simulated.

    Every block marked ``cache_control`` is a breakpoint: the prompt up to and including it
    can be cached. The longest breakpoint prefix seen within the time-to-live is read from
    the cache; the tokens from there to the last breakpoint are written to it. Tokens are
    counted on the text the reasoner reads, as :mod:`open_strawberry.backends.tokens`
    counts a chat: the system blocks joined by newlines, then each turn's text (its blocks
    joined) with the template's share.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._expiry: dict[bytes, float] = {}  # {prompt prefix: expiry (monotonic s)}

    def usage(self, system: Sequence[_Block], messages: Sequence[_Message]) -> wire.PromptTokens:
        now = time.monotonic()
        encoder = msgspec.json.Encoder()
        prefix = bytearray()
        breakpoints: list[tuple[bytes, int]] = []  # [(prompt prefix, tokens up to its end)]
        texts: list[str] = []
        for block in system:
            prefix += encoder.encode(("system", block.text))
            texts.append(block.text)
            if block.cache_control is not None:
                breakpoints.append((bytes(prefix), count_tokens("\n".join(texts))))
        system_tokens = count_tokens("\n".join(texts))
        turns: list[ChatMessage] = []
        for message in messages:
            text = ""
            for block in _blocks(message.content):
                prefix += encoder.encode((message.role, block.text))
                text += block.text
                if block.cache_control is not None:
                    upto = estimate_prompt_tokens([*turns, wire.chat_message(message.role, text)]) - _NO_MESSAGES
                    breakpoints.append((bytes(prefix), system_tokens + upto))
            turns.append(wire.chat_message(message.role, text))
        total = system_tokens + estimate_prompt_tokens(turns)
        read = 0
        for key, upto in breakpoints:
            if self._expiry.get(key, 0.0) > now:
                read = upto
        written = max(0, breakpoints[-1][1] - read) if breakpoints else 0
        for key, _ in breakpoints:
            self._expiry[key] = now + self.ttl_s
        return wire.PromptTokens(total - read - written, cache_read=read, cache_write=written)


def _seed(body: _MessagesBody) -> int | None:
    """The sampling seed a mock-anthropic: client sends in ``metadata.user_id`` (the Messages
    API has no seed field); None for any other user id."""
    user = body.metadata.user_id if body.metadata is not None else None
    number = user.removeprefix(MOCK_SEED_PREFIX) if user and user.startswith(MOCK_SEED_PREFIX) else ""
    return int(number) if number.isdigit() else None


class AnthropicWire:
    """Messages: ``x-api-key``, ``message`` bodies and named events, ``anthropic-ratelimit-*``
    headers for every budget, and a simulated prompt cache."""

    request_id_header = "request-id"

    def __init__(self, cache_ttl_s: float, *, seed: int = 0, redacted: bool = False) -> None:
        self.cache = PromptCache(cache_ttl_s)
        self.signer = Signer(seed)
        self.redacted = redacted

    def authorized(self, headers: Mapping[str, str], key: str) -> bool:
        return headers.get("x-api-key") in (key, f"Bearer {key}")

    def unauthorized(self) -> web.Response:
        return _error(401, "authentication_error", "invalid x-api-key")

    def decode(self, raw: bytes) -> wire.Call[_MessagesBody]:
        body = _decoder.decode(raw)
        think = self._check_thinking(body)
        return wire.Call(body=body, model=body.model, system="\n".join(block.text for block in _blocks(body.system)),
                         turns=[(m.role, wire.join_text(m.content)) for m in body.messages], stream=body.stream,
                         max_tokens=body.max_tokens, stops=body.stop_sequences or [], think=think, seed=_seed(body))

    def _check_thinking(self, body: _MessagesBody) -> bool:
        """Whether the request asks for thinking; raise (a 400) as Anthropic would for a wrong
        thinking option or an altered or missing thinking block of an earlier turn."""
        option = body.thinking
        if option is None or option.type == "disabled":
            return False
        budget = option.budget_tokens
        if option.type != "enabled" or budget is None:
            raise msgspec.DecodeError("thinking: expected {type: enabled, budget_tokens: N}")
        if budget < 1024 or budget >= body.max_tokens:
            raise msgspec.DecodeError(f"thinking.budget_tokens: must be >= 1024 and less than max_tokens "
                                      f"({body.max_tokens}), got {budget}")
        if body.temperature is not None and body.temperature != 1:
            raise msgspec.DecodeError("temperature may only be set to 1 when thinking is enabled")
        for index, message in enumerate(body.messages):
            if message.role == "assistant" and (problem := self.signer.problem(index, _blocks(message.content))):
                raise msgspec.DecodeError(problem)
        return True

    def bad_request(self, problem: str) -> web.Response:
        return _error(400, "invalid_request_error", f"invalid request: {problem}")

    def error(self, status: int, kind: str, message: str) -> web.Response:
        return _error(status, kind, message)

    def rate_limited(self, budget: str, limit: int, cost: int, wait_s: float) -> web.Response:
        message = f"This request would exceed the rate limit of {limit} {budget} per minute."
        return _error(429, "rate_limit_error", message)

    def rate_headers(self, windows: Sequence[wire.RateWindow]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for window in windows:
            prefix = f"anthropic-ratelimit-{window.name.replace('_', '-')}"
            reset = datetime.fromtimestamp(time.time() + window.full_in_s, tz=UTC).isoformat().replace("+00:00", "Z")
            headers.update({f"{prefix}-limit": str(window.limit), f"{prefix}-remaining": str(window.remaining),
                            f"{prefix}-reset": reset})
        return headers

    def prompt_tokens(self, call: wire.Call[_MessagesBody]) -> wire.PromptTokens:
        return self.cache.usage(_blocks(call.body.system), call.body.messages)

    def thinking_blocks(self, reply: wire.Reply) -> list[dict[str, Any]]:
        """The signed blocks of a reply's thinking (none without), noted for the check of the
        turns that come back."""
        if not reply.thinking:
            return []
        self.signer.issued(reply.text)
        blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": reply.thinking,
                                         "signature": self.signer.signature(reply.thinking)}]
        if self.redacted:
            blocks.append({"type": "redacted_thinking", "data": self.signer.redacted(reply.thinking)})
        return blocks

    def body(self, call: wire.Call[_MessagesBody], reply: wire.Reply) -> bytes:
        content = [*self.thinking_blocks(reply), {"type": "text", "text": reply.text}]
        return wire.encode({"id": f"msg_mock{reply.number}", "type": "message", "role": "assistant",
                            "model": call.model, "content": content, "stop_reason": _STOP_REASONS[reply.finish],
                            "stop_sequence": None, "usage": _usage(reply)})

    def frames(self, call: wire.Call[_MessagesBody], reply: wire.Reply) -> _EventFrames:
        return _EventFrames(call.model, reply, self.thinking_blocks(reply))

    def models(self, model: str) -> dict[str, Any]:
        return {"data": [{"type": "model", "id": model, "display_name": "Mock reasoner",
                          "created_at": "2024-01-01T00:00:00Z"}],
                "has_more": False, "first_id": model, "last_id": model}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + wire.encode(data) + b"\n\n"


class _EventFrames:
    """``event: NAME`` / ``data: {json}`` pairs: the thinking blocks (if any), then one text block."""

    def __init__(self, model: str, reply: wire.Reply, thinking: list[dict[str, Any]]) -> None:
        self.model = model
        self.reply = reply
        self.thinking = thinking
        self._open: str | None = None  # the kind of block being streamed
        self._index = 0

    def _start(self, block: dict[str, Any]) -> bytes:
        self._open = block["type"]
        return _event("content_block_start", {"type": "content_block_start", "index": self._index,
                                              "content_block": block})

    def _stop(self) -> bytes:
        """The end of the open block; the end of the thinking sends its signature and the
        redacted blocks after it."""
        out = b""
        if self._open == "thinking":
            signature = self.thinking[0]["signature"]
            out += _event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                  "delta": {"type": "signature_delta", "signature": signature}})
        out += _event("content_block_stop", {"type": "content_block_stop", "index": self._index})
        self._index += 1
        if self._open == "thinking":
            for block in self.thinking[1:]:
                out += self._start(block) + _event("content_block_stop", {"type": "content_block_stop",
                                                                          "index": self._index})
                self._index += 1
        self._open = None
        return out

    def opening(self) -> bytes:
        reply = self.reply
        first = ({"type": "thinking", "thinking": "", "signature": ""} if self.thinking
                 else {"type": "text", "text": ""})
        return (_event("message_start", {"type": "message_start", "message": {
                    "id": f"msg_mock{reply.number}", "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {**_usage(reply), "output_tokens": 1}}})
                + self._start(first)
                + _event("ping", {"type": "ping"}))

    def thought(self, text: str) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                              "delta": {"type": "thinking_delta", "thinking": text}})

    def piece(self, text: str) -> bytes:
        head = b""
        if self._open != "text":
            head = self._stop() + self._start({"type": "text", "text": ""})
        return head + _event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                     "delta": {"type": "text_delta", "text": text}})

    def keepalive(self) -> bytes:
        return b""  # keepalive_every is for OpenAI-compatible streams; this one has its ping

    def error(self) -> bytes:
        return _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    def cut_off(self) -> bytes:
        return b""

    def closing(self) -> bytes:
        reply = self.reply
        return ((self._stop() if self._open is not None else b"")
                + _event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": _STOP_REASONS[reply.finish],
                                                     "stop_sequence": None},
                                           "usage": {"output_tokens": reply.output_tokens}})
                + _event("message_stop", {"type": "message_stop"}))
