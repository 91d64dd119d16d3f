"""Native client for OpenAI-compatible ``/v1/chat/completions`` (OpenAI, vLLM, SGLang,
llama.cpp's server, ollama, LM Studio...), on aiohttp with msgspec decoding.

Quirks it copes with: a first chunk that carries only the role; several tokens per chunk;
``: keep-alive`` comment lines; no usage chunk at all (llama.cpp's ``timings`` are used
instead, else the usage is estimated and flagged); an ``{"error": ...}`` chunk mid-stream;
a stream that ends without ``[DONE]`` after a finish reason.
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

__all__ = ["OpenAIChatBackend", "openai_body", "openai_usage"]


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None


class _LlamaTimings(msgspec.Struct):
    prompt_n: int | None = None
    cache_n: int | None = None
    predicted_n: int | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    model: str | None = None
    timings: _LlamaTimings | None = None
    error: ErrorBody | None = None


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Response(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage | None = None
    model: str | None = None
    timings: _LlamaTimings | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)
_response_decoder = msgspec.json.Decoder(_Response)
_encoder = msgspec.json.Encoder()


class _ChatStream:
    """A streamed chat completion, read one SSE event at a time (an :class:`EventReader`)."""

    __slots__ = ("cap", "clock", "done", "finish", "max_tokens", "model", "on_delta", "parts", "provider",
                 "received", "timings", "usage")

    def __init__(self, max_tokens: int, on_delta: DeltaCallback | None, provider: str) -> None:
        self.max_tokens, self.cap = max_tokens, reply_cap(max_tokens)
        self.on_delta, self.provider = on_delta, provider
        self.parts: list[str] = []
        self.received = 0
        self.finish: str | None = None
        self.usage: _Usage | None = None
        self.timings: _LlamaTimings | None = None
        self.model: str | None = None
        self.done = False
        self.clock = Stopwatch()

    def event(self, name: str, data: bytes) -> bool:
        if data == b"[DONE]":
            self.done = True
            return True
        chunk = _chunk_decoder.decode(data)
        if chunk.error is not None:
            raise stream_error(self.provider, chunk.error)
        for choice in chunk.choices:
            text = choice.delta.content if choice.delta is not None else None
            if text:
                self.clock.chunk()
                self.parts.append(text)
                self.received += len(text)
                if self.received > self.cap:
                    raise oversized_reply(self.received, self.max_tokens, self.provider)
                if self.on_delta is not None:
                    self.on_delta(text)
            if choice.finish_reason:
                self.finish = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.timings is not None:
            self.timings = chunk.timings
        if chunk.model:
            self.model = chunk.model
        return False


def openai_body(request: ChatRequest, model: str, provider: str, *, stream: bool,
                system_role: bool = True) -> dict[str, Any]:
    """The JSON body of a chat completion request (also the official SDK's keyword arguments).

    With ``system_role`` false (a model whose chat template has no system role), system
    messages are folded into the first user message, as such models are trained to read them.
    """
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend({"role": m.role, "content": m.content} for m in request.messages)
    if not system_role:
        messages = _fold_system(messages)
    body: dict[str, Any] = {"model": request.model or model, "messages": messages}
    # OpenAI itself wants max_completion_tokens; other servers know max_tokens
    body["max_completion_tokens" if provider == "openai" else "max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.extra_body:
        body.update(request.extra_body)
    return body


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
    if first is None:
        return [{"role": "user", "content": system}, *rest]
    rest[first] = {"role": "user", "content": f"{system}\n\n{rest[first]['content']}"}
    return rest


class OpenAIChatBackend(HTTPBackend):
    """A :class:`~open_strawberry.backends.base.Backend` for OpenAI-compatible servers.

    ``system_role=False`` folds system prompts into the first user message, for models whose
    chat template has no system role (``generate`` learns this from llama.cpp's ``/props``).
    """

    provider = "openai"

    def __init__(self, *, system_role: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.system_role = system_role

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key.reveal()}"} if self._api_key else {}

    def encode_request(self, request: ChatRequest, *, stream: bool) -> bytes:
        return _encoder.encode(openai_body(request, self.model, self.provider, stream=stream,
                                           system_role=self.system_role))

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        body = self.encode_request(request, stream=stream)
        if not stream:
            return await self._complete_whole(request, body, on_delta)
        reply = _ChatStream(request.max_tokens, on_delta, self.provider)
        rate_limits = await self._stream("/chat/completions", body, reply, max_tokens=request.max_tokens)
        _check_finished(reply.finish, reply.done, self.provider)
        text = "".join(reply.parts)
        return Completion(
            text=text,
            finish_reason=reply.finish,
            usage=self._usage(reply.usage, reply.timings, request, text),
            timings=reply.clock.timings(),
            model=reply.model,
            rate_limits=rate_limits,
        )

    async def _complete_whole(self, request: ChatRequest, body: bytes, on_delta: DeltaCallback | None) -> Completion:
        parsed, rate_limits, clock = await self._fetch("/chat/completions", body, _response_decoder,
                                                       max_tokens=request.max_tokens)
        if not parsed.choices:
            raise StreamError("the response has no choices", provider=self.provider)
        choice = parsed.choices[0]
        _check_finished(choice.finish_reason, True, self.provider)
        text = choice.message.content or ""
        if on_delta is not None and text:
            on_delta(text)
        return Completion(
            text=text,
            finish_reason=choice.finish_reason,
            usage=self._usage(parsed.usage, parsed.timings, request, text),
            timings=clock.timings(),
            model=parsed.model,
            rate_limits=rate_limits,
        )

    @staticmethod
    def _usage(usage: _Usage | None, timings: _LlamaTimings | None, request: ChatRequest, text: str) -> Usage:
        if usage is not None:
            details = usage.prompt_tokens_details
            cached = details.cached_tokens if details is not None else None
            return openai_usage(usage.prompt_tokens, usage.completion_tokens, cached)
        if timings is not None and timings.predicted_n is not None:
            cached = timings.cache_n or 0
            return Usage(input_tokens=(timings.prompt_n or 0) + cached, output_tokens=timings.predicted_n,
                         cache_read_tokens=cached)
        return Usage(
            input_tokens=estimate_prompt_tokens(request.messages, request.system),
            output_tokens=count_tokens(text),
            estimated=True,
        )


# finish reasons that say the server gave up on the request rather than finished it (vLLM: abort)
_ABORTED = frozenset({"abort", "error", "cancelled"})


def _check_finished(finish: str | None, done: bool, provider: str) -> None:
    """A completion counts only when the server says it finished: a finish reason that is not an
    abort. Anything else is an interrupted stream, worth another attempt, never an empty turn."""
    if finish is None:
        how = ("[DONE] came with no finish reason: the server cut the stream off (llama-cpp-python does "
               "this to a request when another arrives)") if done else "the stream ended without a finish reason"
        raise StreamError(how, provider=provider)
    if finish in _ABORTED:
        raise StreamError(f"the server aborted the request (finish reason {finish!r})", provider=provider)


def openai_usage(prompt_tokens: int | None, completion_tokens: int | None, cached_tokens: int | None) -> Usage:
    return Usage(input_tokens=prompt_tokens or 0, output_tokens=completion_tokens or 0,
                 cache_read_tokens=cached_tokens or 0)
