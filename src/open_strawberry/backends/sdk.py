"""Adapters that put a user's own official SDK client behind the :class:`Backend` protocol.

Use them for what the native clients do not cover: Azure OpenAI, Bedrock, Vertex, custom
auth or transports. The adapter turns the SDK's own retries off (``max_retries=0``): retry
policy belongs to the limiter. SDK errors are translated into the project's exception tree.
The package never constructs these clients, so their redirect policy is the caller's (the
official SDKs build their httpx client with ``follow_redirects=True``; httpx drops only the
``Authorization`` header on the way to another host, not ``x-api-key``): pass an
``http_client`` with ``follow_redirects=False`` where the base URL is not trusted.

Importing this module does not import an SDK (``openai`` and ``anthropic`` take seconds to
load): an adapter uses the SDK of the client it was given, which the caller has loaded.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from open_strawberry.backends.anthropic_messages import STOP_REASONS, anthropic_body, anthropic_usage, thinking_block
from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.backends.headers import retry_hints
from open_strawberry.backends.openai_chat import merge_reasoning_details, openai_body, openai_usage
from open_strawberry.backends.reply import ReplyBuilder, with_reasoning_tokens
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.errors import (
    BackendClosedError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    StreamError,
    error_for_status,
)
from open_strawberry.messages import Completion, Usage
from open_strawberry.redact import redact

if TYPE_CHECKING:
    import openai

__all__ = ["AnthropicSDKBackend", "OpenAISDKBackend"]


def _map_sdk_error(exc: Exception, provider: str, sdk: ModuleType) -> BackendError:
    """Our error for ``exc``, an error of ``sdk`` (the ``openai`` or ``anthropic`` module)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        headers = response.headers if response is not None else {}
        wait, should = retry_hints(headers)
        return error_for_status(status)(
            redact(str(getattr(exc, "message", exc))), provider=provider, status=status,
            request_id=getattr(exc, "request_id", None), retry_after=wait, should_retry=should,
        )
    if isinstance(exc, sdk.APITimeoutError):
        return BackendTimeoutError(redact(str(exc)), provider=provider)
    if isinstance(exc, sdk.APIConnectionError):
        return BackendConnectionError(redact(str(exc)), provider=provider)
    return StreamError(redact(f"{type(exc).__name__}: {exc}"), provider=provider)


class _Adapter:
    """What both adapters share: the client with retries off, closing, the error mapping and the
    shape of a call. A subclass says how to send a request and read the reply, streamed
    (:meth:`_streamed`) or whole (:meth:`_whole`), into a :class:`ReplyBuilder`."""

    provider: str
    inline_think = False  # whether the content may carry <think>...</think> (OpenAI-compatible servers)

    def __init__(self, client: Any, model: str, provider: str) -> None:
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.provider = provider
        self._closed = False

    def _sdk(self) -> tuple[ModuleType, type[Exception]]:
        """The SDK's module and the root of its errors."""
        raise NotImplementedError

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    async def _whole(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        raise NotImplementedError

    async def _streamed(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        raise NotImplementedError

    def _usage(self, read: _Read, request: ChatRequest, text: str, reasoning: str) -> Usage:
        raise NotImplementedError

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        sdk, sdk_error = self._sdk()  # already loaded: the caller built the client with it
        if self._closed:
            # The adapter never closes the client: it was handed in, and its ``with_options`` copy
            # shares the caller's connection pool, so closing the copy would close theirs too.
            raise BackendClosedError(f"the {self.provider} adapter was closed and takes no more calls",
                                     provider=self.provider)
        body = self._body(request, stream)
        clock = Stopwatch()
        reply = ReplyBuilder(request.max_tokens, on_delta, self.provider, clock=clock, timed=stream,
                             inline_think=self.inline_think)
        try:
            if stream:
                read = await self._streamed(body, reply)
            else:
                read = await self._whole(body, reply)
        except sdk_error as exc:
            raise _map_sdk_error(exc, self.provider, sdk) from exc
        text, reasoning = reply.finish()
        return reply.completion(text, reasoning, finish_reason=read.finish, model=read.model,
                                usage=self._usage(read, request, text, reasoning))

    async def aclose(self) -> None:
        """Refuse further calls; idempotent. The client is the caller's and stays open."""
        self._closed = True


class _Read:
    """What a call read besides the text: the finish reason, the model, the usage object."""

    __slots__ = ("finish", "model", "usage")

    def __init__(self, finish: str | None = None, model: str | None = None, usage: Any = None) -> None:
        self.finish, self.model, self.usage = finish, model, usage


def _openai_delta(delta: Any, reply: ReplyBuilder, details: list[dict[str, Any]], *, whole: bool = False) -> None:
    """An SDK message or delta into ``reply``: the reasoning fields are in its ``model_extra``."""
    extra = getattr(delta, "model_extra", None) or {}
    thinking = extra.get("reasoning") or extra.get("reasoning_content")
    more = extra.get("reasoning_details")
    if isinstance(more, list):
        details.extend(item for item in more if isinstance(item, dict))
        if thinking is None:
            thinking = "".join(item.get("text") or item.get("summary") or "" for item in more if isinstance(item, dict))
    if isinstance(thinking, str) and thinking:
        reply.thinking(thinking)
    if delta.content:
        (reply.whole_content if whole else reply.content)(delta.content)


class OpenAISDKBackend(_Adapter):
    """Wraps an ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``) client."""

    inline_think = True

    def __init__(self, client: openai.AsyncOpenAI, model: str, *, provider: str = "openai-sdk") -> None:
        super().__init__(client, model, provider)

    def _sdk(self) -> tuple[ModuleType, type[Exception]]:
        import openai

        return openai, openai.OpenAIError

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return openai_body(request, self.model, "openai-compatible", stream=stream)

    async def _whole(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        response = await self.client.chat.completions.create(**body)
        reply.clock.chunk()
        first = response.choices[0] if response.choices else None
        details: list[dict[str, Any]] = []
        if first is not None:
            _openai_delta(first.message, reply, details, whole=True)
        reply.blocks.extend(merge_reasoning_details(details))
        return _Read(first.finish_reason if first is not None else None, response.model, response.usage)

    async def _streamed(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        read = _Read()
        details: list[dict[str, Any]] = []
        chunks = await self.client.chat.completions.create(**body)
        async for chunk in chunks:
            for choice in chunk.choices:
                if choice.delta is not None:
                    _openai_delta(choice.delta, reply, details)
                read.finish = choice.finish_reason or read.finish
            read.usage = chunk.usage or read.usage
            read.model = chunk.model or read.model
        reply.blocks.extend(merge_reasoning_details(details))
        return read

    def _usage(self, read: _Read, request: ChatRequest, text: str, reasoning: str) -> Usage:
        usage = read.usage
        if usage is None:
            return with_reasoning_tokens(
                Usage(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                      output_tokens=count_tokens(text) + count_tokens(reasoning), estimated=True), None, reasoning)
        details = getattr(usage, "prompt_tokens_details", None)
        ours = openai_usage(usage.prompt_tokens, usage.completion_tokens, getattr(details, "cached_tokens", None))
        reported = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
        return with_reasoning_tokens(ours, reported, reasoning)


class AnthropicSDKBackend(_Adapter):
    """Wraps an ``anthropic.AsyncAnthropic`` (or ``AsyncAnthropicBedrock``/``AsyncAnthropicVertex``)."""

    def __init__(self, client: Any, model: str, *, prompt_cache: bool = True, provider: str = "anthropic-sdk") -> None:
        super().__init__(client, model, provider)
        self.prompt_cache = prompt_cache

    def _sdk(self) -> tuple[ModuleType, type[Exception]]:
        import anthropic

        return anthropic, anthropic.AnthropicError

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return anthropic_body(request, self.model, prompt_cache=self.prompt_cache, stream=stream)

    async def _whole(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        message = await self.client.messages.create(**body)
        reply.clock.chunk()
        for block in message.content:
            if block.type == "text":
                reply.answer(block.text)
            elif (kept := thinking_block(block)) is not None:
                reply.thinking(getattr(block, "thinking", ""))
                reply.blocks.append(kept)
        return _Read(_stop_reason(message.stop_reason), message.model, message.usage)

    async def _streamed(self, body: dict[str, Any], reply: ReplyBuilder) -> _Read:
        read = _Read(usage={})
        block: dict[str, Any] | None = None
        events = await self.client.messages.create(**body)
        async for event in events:
            if event.type == "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta":
                    reply.answer(delta.text)
                elif delta.type == "thinking_delta":
                    reply.thinking(delta.thinking)
                    if block is not None:
                        block["thinking"] += delta.thinking
                elif delta.type == "signature_delta" and block is not None:
                    block["signature"] = delta.signature
            elif event.type == "content_block_start":
                block = thinking_block(event.content_block)
            elif event.type == "content_block_stop" and block is not None:
                reply.blocks.append(block)
                block = None
            elif event.type == "message_start":
                read.model = event.message.model
                read.usage.update({k: v for k, v in vars(event.message.usage).items() if isinstance(v, int)})
            elif event.type == "message_delta":
                read.finish = event.delta.stop_reason or read.finish
                read.usage.update({k: v for k, v in vars(event.usage).items() if isinstance(v, int)})
        read.usage = SimpleNamespace(**read.usage)
        read.finish = _stop_reason(read.finish)
        return read

    def _usage(self, read: _Read, request: ChatRequest, text: str, reasoning: str) -> Usage:
        return with_reasoning_tokens(anthropic_usage(read.usage), None, reasoning)


def _stop_reason(reason: str | None) -> str | None:
    """Anthropic's stop reason in OpenAI words."""
    return STOP_REASONS.get(reason or "", reason)
