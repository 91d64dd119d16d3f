"""Adapters that put a user's own official SDK client behind the :class:`Backend` protocol.

Use them for what the native clients do not cover: Azure OpenAI, Bedrock, Vertex, custom
auth or transports. The adapter turns the SDK's own retries off (``max_retries=0``): retry
policy belongs to the limiter. SDK errors are translated into the project's exception tree.

Importing this module does not import an SDK (``openai`` and ``anthropic`` take seconds to
load): an adapter uses the SDK of the client it was given, which the caller has loaded.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from open_strawberry.backends.anthropic_messages import STOP_REASONS, anthropic_body, anthropic_usage
from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.backends.headers import retry_hints
from open_strawberry.backends.openai_chat import openai_body, openai_usage
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


def _refuse_if_closed(adapter: OpenAISDKBackend | AnthropicSDKBackend) -> None:
    # The adapter never closes the client: it was handed in, and its ``with_options`` copy
    # shares the caller's connection pool, so closing the copy would close theirs too.
    if adapter._closed:
        raise BackendClosedError(f"the {adapter.provider} adapter was closed and takes no more calls",
                                 provider=adapter.provider)


class OpenAISDKBackend:
    """Wraps an ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``) client."""

    def __init__(self, client: openai.AsyncOpenAI, model: str, *, provider: str = "openai-sdk") -> None:
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.provider = provider
        self._closed = False

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        import openai  # already loaded: the caller built the client with it

        _refuse_if_closed(self)
        body = openai_body(request, self.model, "openai-compatible", stream=stream)
        clock = Stopwatch()
        try:
            if not stream:
                response = await self.client.chat.completions.create(**body)
                first = response.choices[0] if response.choices else None
                text = (first.message.content or "") if first is not None else ""
                if on_delta is not None and text:
                    on_delta(text)
                clock.chunk()
                usage = response.usage
                return Completion(
                    text=text,
                    finish_reason=first.finish_reason if first is not None else None,
                    usage=self._usage(usage, request, text),
                    timings=clock.timings(),
                    model=response.model,
                )
            parts: list[str] = []
            finish: str | None = None
            usage = None
            model = None
            chunks = await self.client.chat.completions.create(**body)
            async for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        clock.chunk()
                        parts.append(choice.delta.content)
                        if on_delta is not None:
                            on_delta(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
                usage = chunk.usage or usage
                model = chunk.model or model
        except openai.OpenAIError as exc:
            raise _map_sdk_error(exc, self.provider, openai) from exc
        text = "".join(parts)
        return Completion(text=text, finish_reason=finish, usage=self._usage(usage, request, text),
                          timings=clock.timings(), model=model)

    @staticmethod
    def _usage(usage: Any, request: ChatRequest, text: str) -> Usage:
        if usage is None:
            return Usage(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                         output_tokens=count_tokens(text), estimated=True)
        details = getattr(usage, "prompt_tokens_details", None)
        return openai_usage(usage.prompt_tokens, usage.completion_tokens, getattr(details, "cached_tokens", None))

    async def aclose(self) -> None:
        """Refuse further calls; idempotent. The client is the caller's and stays open."""
        self._closed = True


class AnthropicSDKBackend:
    """Wraps an ``anthropic.AsyncAnthropic`` (or ``AsyncAnthropicBedrock``/``AsyncAnthropicVertex``)."""

    def __init__(self, client: Any, model: str, *, prompt_cache: bool = True, provider: str = "anthropic-sdk") -> None:
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.prompt_cache = prompt_cache
        self.provider = provider
        self._closed = False

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        import anthropic  # already loaded: the caller built the client with it

        _refuse_if_closed(self)
        body = anthropic_body(request, self.model, prompt_cache=self.prompt_cache, stream=stream)
        clock = Stopwatch()
        try:
            if not stream:
                message = await self.client.messages.create(**body)
                text = "".join(getattr(block, "text", "") for block in message.content if block.type == "text")
                clock.chunk()
                if on_delta is not None and text:
                    on_delta(text)
                return Completion(text=text, finish_reason=STOP_REASONS.get(message.stop_reason or "",
                                                                             message.stop_reason),
                                  usage=anthropic_usage(message.usage), timings=clock.timings(), model=message.model)
            parts: list[str] = []
            usage: dict[str, int | None] = {}
            stop_reason: str | None = None
            model: str | None = None
            events = await self.client.messages.create(**body)
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    clock.chunk()
                    parts.append(event.delta.text)
                    if on_delta is not None:
                        on_delta(event.delta.text)
                elif event.type == "message_start":
                    model = event.message.model
                    usage.update({k: v for k, v in vars(event.message.usage).items() if isinstance(v, int)})
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    usage.update({k: v for k, v in vars(event.usage).items() if isinstance(v, int)})
        except anthropic.AnthropicError as exc:
            raise _map_sdk_error(exc, self.provider, anthropic) from exc
        return Completion(text="".join(parts), finish_reason=STOP_REASONS.get(stop_reason or "", stop_reason),
                          usage=anthropic_usage(SimpleNamespace(**usage)), timings=clock.timings(), model=model)

    async def aclose(self) -> None:
        """Refuse further calls; idempotent. The client is the caller's and stays open."""
        self._closed = True
