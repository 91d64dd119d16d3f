"""Native client for Anthropic's ``/v1/messages``, on aiohttp with msgspec decoding.

Prompt caching: with ``prompt_cache`` (the default) the system prompt and the two newest
user turns carry ``cache_control: {"type": "ephemeral"}`` (3 of the 4 breakpoints the API
allows), so each turn of a multi-turn trace reads the conversation so far from the cache
and writes only the new tail.

Extended thinking: ``ChatRequest.thinking_budget`` sends ``thinking: {"type": "enabled",
"budget_tokens": N}``. The reply's ``thinking`` blocks (``thinking_delta`` events, then one
``signature_delta``) and ``redacted_thinking`` blocks (``data``) become the completion's
``reasoning`` and, kept whole with their signatures, its ``reasoning_blocks``, which go back
unmodified before the text of that assistant turn in later requests (unless
``reasoning_history`` is ``"drop"``). Anthropic reports no count of thinking tokens (they are
inside ``output_tokens``): ours is an estimate from the thinking text, flagged as such.
"""

from __future__ import annotations

from typing import Any

import msgspec

from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.backends.http import ErrorBody, HTTPBackend, stream_error
from open_strawberry.backends.reply import ReplyBuilder, arrived_whole, with_reasoning_tokens
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.errors import StreamError
from open_strawberry.messages import ChatMessage, Completion, RateLimits, Usage

__all__ = ["ANTHROPIC_VERSION", "MOCK_SEED_PREFIX", "STOP_REASONS", "AnthropicMessagesBackend", "anthropic_body",
           "anthropic_usage", "decode_message", "thinking_block"]

ANTHROPIC_VERSION = "2023-06-01"
# The Messages API takes no seed: a mock-anthropic: call carries its seed to the mock (and only
# there) in metadata.user_id, a field the real API accepts, as this prefix and the number.
MOCK_SEED_PREFIX = "open-strawberry-seed-"
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
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _Message(msgspec.Struct):
    model: str | None = None
    usage: _Usage | None = None
    stop_reason: str | None = None
    content: list[_Block] = []


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    index: int | None = None
    content_block: _Block | None = None
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: ErrorBody | None = None


_event_decoder = msgspec.json.Decoder(_Event)
_message_decoder = msgspec.json.Decoder(_Message)
_encoder = msgspec.json.Encoder()


def thinking_block(block: Any) -> dict[str, Any] | None:
    """A thinking or redacted-thinking block (ours, or the SDK's ``ThinkingBlock`` and
    ``RedactedThinkingBlock``) as it must go back; None for any other block."""
    kind = getattr(block, "type", None)
    if kind == "thinking":
        return {"type": "thinking", "thinking": getattr(block, "thinking", None) or "",
                "signature": getattr(block, "signature", None) or ""}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": getattr(block, "data", None) or ""}
    return None


class _MessageStream:
    """A streamed message, read one SSE event at a time (an :class:`EventReader`)."""

    __slots__ = ("block", "done", "model", "provider", "reply", "stop_reason", "usage")

    def __init__(self, max_tokens: int, on_delta: DeltaCallback | None, provider: str) -> None:
        self.reply = ReplyBuilder(max_tokens, on_delta, provider)
        self.provider = provider
        self.block: dict[str, Any] | None = None  # the thinking block being streamed
        self.stop_reason: str | None = None
        self.usage = _Usage()
        self.model: str | None = None
        self.done = False

    def event(self, name: str, data: bytes) -> bool:
        event = _event_decoder.decode(data)
        kind = event.type
        if kind == "content_block_delta":
            if event.delta is not None:
                self._delta(event.delta)
        elif kind == "content_block_start" and event.content_block is not None:
            self.block = thinking_block(event.content_block)
        elif kind == "content_block_stop" and self.block is not None:
            self.reply.blocks.append(self.block)
            self.block = None
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
        # ping and unknown events carry nothing we need
        return False

    def _delta(self, delta: _Delta) -> None:
        if delta.type == "text_delta" and delta.text:
            self.reply.answer(delta.text)
        elif delta.type == "thinking_delta" and delta.thinking:
            self.reply.thinking(delta.thinking)
            if self.block is not None:
                self.block["thinking"] += delta.thinking
        elif delta.type == "signature_delta" and self.block is not None:
            self.block["signature"] = delta.signature or ""


def anthropic_body(request: ChatRequest, model: str, *, prompt_cache: bool, stream: bool) -> dict[str, Any]:
    """The JSON body of a Messages request (also the official SDK's keyword arguments)."""
    system_parts = [request.system] if request.system else []
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            system_parts.append(message.content)
            continue
        blocks = _content(message, keep_thinking=request.reasoning_history != "drop")
        if turns and turns[-1]["role"] == message.role:  # the API wants roles to alternate
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
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
    if request.thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget}
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    if request.extra_body:
        body.update(request.extra_body)
    return body


def _content(message: ChatMessage, *, keep_thinking: bool) -> list[dict[str, Any]]:
    """The content blocks of one message: an assistant turn's thinking blocks first, unmodified
    (signatures included), then its text (left out when empty after thinking: the API refuses
    empty text blocks)."""
    text: dict[str, Any] = {"type": "text", "text": message.content}
    if message.role != "assistant" or not keep_thinking or not message.reasoning_blocks:
        return [text]
    blocks = [dict(block) for block in message.reasoning_blocks]
    return [*blocks, text] if message.content else blocks


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
        body = anthropic_body(request, self.model, prompt_cache=self.prompt_cache, stream=stream)
        if self.provider == "mock-anthropic" and request.seed is not None:
            body["metadata"] = {"user_id": f"{MOCK_SEED_PREFIX}{request.seed}"}
        return _encoder.encode(body)

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        body = self.encode_request(request, stream=stream)
        if not stream:
            return await self._complete_whole(request, body, on_delta)
        reader = _MessageStream(request.max_tokens, on_delta, self.provider)
        rate_limits = await self._stream("/v1/messages", body, reader, max_tokens=request.max_tokens)
        if not reader.done:
            raise StreamError("the stream ended before message_stop", provider=self.provider)
        return _completion(reader.reply, request, stop_reason=reader.stop_reason, usage=reader.usage,
                           model=reader.model, rate_limits=rate_limits)

    async def _complete_whole(self, request: ChatRequest, body: bytes, on_delta: DeltaCallback | None) -> Completion:
        message, rate_limits, clock = await self._fetch("/v1/messages", body, _message_decoder,
                                                        max_tokens=request.max_tokens)
        return _whole(message, request, self.provider, on_delta, clock=clock, rate_limits=rate_limits)


def decode_message(raw: bytes, request: ChatRequest, provider: str, *, clock: Stopwatch | None = None) -> Completion:
    """A whole ``message`` body (a batch's succeeded result) read as a non-streamed call's reply
    is, arriving now on ``clock`` (started when the call was sent); raises :class:`StreamError`
    for a body that is not one."""
    message, clock = arrived_whole(_message_decoder, raw, provider, "message", clock)
    return _whole(message, request, provider, None, clock=clock, rate_limits=None)


def _whole(message: _Message, request: ChatRequest, provider: str, on_delta: DeltaCallback | None, *,
           clock: Stopwatch, rate_limits: RateLimits | None) -> Completion:
    reply = ReplyBuilder(request.max_tokens, on_delta, provider, clock=clock, timed=False)
    for block in message.content:
        if block.type == "text":
            reply.answer(block.text or "")
        elif (kept := thinking_block(block)) is not None:
            reply.thinking(block.thinking or "")
            reply.blocks.append(kept)
    return _completion(reply, request, stop_reason=message.stop_reason, usage=message.usage or _Usage(),
                       model=message.model, rate_limits=rate_limits)


def _completion(reply: ReplyBuilder, request: ChatRequest, *, stop_reason: str | None, usage: _Usage,
                model: str | None, rate_limits: RateLimits | None) -> Completion:
    text, reasoning = reply.finish()
    return reply.completion(text, reasoning, finish_reason=STOP_REASONS.get(stop_reason or "", stop_reason),
                            usage=_to_usage(usage, request, text, reasoning), model=model, rate_limits=rate_limits)


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


def _to_usage(usage: _Usage, request: ChatRequest, text: str, reasoning: str) -> Usage:
    if usage.input_tokens is None and usage.output_tokens is None:
        ours = Usage(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                     output_tokens=count_tokens(text) + count_tokens(reasoning), estimated=True)
    else:
        ours = anthropic_usage(usage)
    return with_reasoning_tokens(ours, None, reasoning)


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
