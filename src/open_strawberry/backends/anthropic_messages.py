"""Native client for Anthropic's ``/v1/messages``, on aiohttp with msgspec decoding.

Prompt caching: with ``prompt_cache`` (the default) the system prompt and the two newest
user turns carry ``cache_control: {"type": "ephemeral"}`` (3 of the 4 breakpoints the API
allows), so each turn of a multi-turn trace reads the conversation so far from the cache
and writes only the new tail.
"""

from __future__ import annotations

from typing import Any

import msgspec

from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.backends.http import ErrorBody, HTTPBackend, stream_error
from open_strawberry.backends.limits import oversized_reply, reply_cap
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.errors import StreamError
from open_strawberry.messages import Completion, Usage

__all__ = ["ANTHROPIC_VERSION", "STOP_REASONS", "AnthropicMessagesBackend", "anthropic_body", "anthropic_usage"]

ANTHROPIC_VERSION = "2023-06-01"
_CACHED_USER_TURNS = 2
STOP_REASONS = {  # Anthropic stop reasons in OpenAI words
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Block(msgspec.Struct):
    type: str = "text"
    text: str | None = None


class _Message(msgspec.Struct):
    model: str | None = None
    usage: _Usage | None = None
    stop_reason: str | None = None
    content: list[_Block] = []


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: ErrorBody | None = None


_event_decoder = msgspec.json.Decoder(_Event)
_message_decoder = msgspec.json.Decoder(_Message)
_encoder = msgspec.json.Encoder()


class _MessageStream:
    """A streamed message, read one SSE event at a time (an :class:`EventReader`)."""

    __slots__ = ("cap", "clock", "done", "max_tokens", "model", "on_delta", "parts", "provider", "received",
                 "stop_reason", "usage")

    def __init__(self, max_tokens: int, on_delta: DeltaCallback | None, provider: str) -> None:
        self.max_tokens, self.cap = max_tokens, reply_cap(max_tokens)
        self.on_delta, self.provider = on_delta, provider
        self.parts: list[str] = []
        self.received = 0
        self.stop_reason: str | None = None
        self.usage = _Usage()
        self.model: str | None = None
        self.done = False
        self.clock = Stopwatch()

    def event(self, name: str, data: bytes) -> bool:
        event = _event_decoder.decode(data)
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta is not None and delta.type == "text_delta" and delta.text:
                self.clock.chunk()
                self.parts.append(delta.text)
                self.received += len(delta.text)
                if self.received > self.cap:
                    raise oversized_reply(self.received, self.max_tokens, self.provider)
                if self.on_delta is not None:
                    self.on_delta(delta.text)
        elif kind == "message_start" and event.message is not None:
            self.model = event.message.model
            self.usage = _merge(self.usage, event.message.usage)
        elif kind == "message_delta":
            if event.delta is not None and event.delta.stop_reason:
                self.stop_reason = event.delta.stop_reason
            self.usage = _merge(self.usage, event.usage)
        elif kind == "message_stop":
            self.done = True
            return True
        elif kind == "error":
            raise stream_error(self.provider, event.error or ErrorBody(message="unknown error"))
        # ping, content_block_start/stop and unknown events carry nothing we need
        return False


def anthropic_body(request: ChatRequest, model: str, *, prompt_cache: bool, stream: bool) -> dict[str, Any]:
    """The JSON body of a Messages request (also the official SDK's keyword arguments)."""
    system_parts = [request.system] if request.system else []
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            system_parts.append(message.content)
            continue
        block: dict[str, Any] = {"type": "text", "text": message.content}
        if turns and turns[-1]["role"] == message.role:  # the API wants roles to alternate
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": message.role, "content": [block]})
    body: dict[str, Any] = {"model": request.model or model, "max_tokens": request.max_tokens,
                            "messages": turns}
    if system_parts:
        system: list[dict[str, Any]] = [{"type": "text", "text": text} for text in system_parts]
        if prompt_cache:
            system[-1]["cache_control"] = {"type": "ephemeral"}
        body["system"] = system
    if prompt_cache:
        user_turns = [turn for turn in turns if turn["role"] == "user"]
        for turn in user_turns[-_CACHED_USER_TURNS:]:
            turn["content"][-1]["cache_control"] = {"type": "ephemeral"}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    if request.extra_body:
        body.update(request.extra_body)
    return body


class AnthropicMessagesBackend(HTTPBackend):
    """A :class:`~open_strawberry.backends.base.Backend` for the Anthropic Messages API."""

    provider = "anthropic"

    def __init__(self, *, prompt_cache: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_cache = prompt_cache

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key.reveal()
        return headers

    def encode_request(self, request: ChatRequest, *, stream: bool) -> bytes:
        return _encoder.encode(anthropic_body(request, self.model, prompt_cache=self.prompt_cache, stream=stream))

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        body = self.encode_request(request, stream=stream)
        if not stream:
            return await self._complete_whole(request, body, on_delta)
        reply = _MessageStream(request.max_tokens, on_delta, self.provider)
        rate_limits = await self._stream("/v1/messages", body, reply, max_tokens=request.max_tokens)
        if not reply.done:
            raise StreamError("the stream ended before message_stop", provider=self.provider)
        text = "".join(reply.parts)
        return Completion(
            text=text,
            finish_reason=STOP_REASONS.get(reply.stop_reason or "", reply.stop_reason),
            usage=_to_usage(reply.usage, request, text),
            timings=reply.clock.timings(),
            model=reply.model,
            rate_limits=rate_limits,
        )

    async def _complete_whole(self, request: ChatRequest, body: bytes, on_delta: DeltaCallback | None) -> Completion:
        message, rate_limits, clock = await self._fetch("/v1/messages", body, _message_decoder,
                                                        max_tokens=request.max_tokens)
        text = "".join(block.text or "" for block in message.content if block.type == "text")
        if on_delta is not None and text:
            on_delta(text)
        return Completion(
            text=text,
            finish_reason=STOP_REASONS.get(message.stop_reason or "", message.stop_reason),
            usage=_to_usage(message.usage or _Usage(), request, text),
            timings=clock.timings(),
            model=message.model,
            rate_limits=rate_limits,
        )


def _merge(old: _Usage, new: _Usage | None) -> _Usage:
    if new is None:
        return old
    return _Usage(
        input_tokens=new.input_tokens if new.input_tokens is not None else old.input_tokens,
        output_tokens=new.output_tokens if new.output_tokens is not None else old.output_tokens,
        cache_creation_input_tokens=(new.cache_creation_input_tokens if new.cache_creation_input_tokens is not None
                                     else old.cache_creation_input_tokens),
        cache_read_input_tokens=(new.cache_read_input_tokens if new.cache_read_input_tokens is not None
                                 else old.cache_read_input_tokens),
    )


def _to_usage(usage: _Usage, request: ChatRequest, text: str) -> Usage:
    if usage.input_tokens is None and usage.output_tokens is None:
        return Usage(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                     output_tokens=count_tokens(text), estimated=True)
    return anthropic_usage(usage)


def anthropic_usage(usage: Any) -> Usage:
    """Our Usage from Anthropic's (any object with its attribute names, the SDK's included).

    Our ``input_tokens`` counts every prompt token; Anthropic's leaves out cache reads and writes.
    """
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    return Usage(
        input_tokens=(getattr(usage, "input_tokens", None) or 0) + read + written,
        output_tokens=getattr(usage, "output_tokens", None) or 0,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )
