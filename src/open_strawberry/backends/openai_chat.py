"""Native client for OpenAI-compatible ``/v1/chat/completions`` (OpenAI, vLLM, SGLang,
llama.cpp's server, ollama, LM Studio...), on aiohttp with msgspec decoding.

Quirks it copes with: a first chunk that carries only the role; several tokens per chunk;
``: keep-alive`` comment lines; no usage chunk at all (llama.cpp's ``timings`` are used
instead, else the usage is estimated and flagged); an ``{"error": ...}`` chunk mid-stream;
a stream that ends without ``[DONE]`` after a finish reason.

Thinking, in every form servers send it (streamed in ``delta`` under the same names):
``reasoning`` (vLLM, ollama, OpenRouter), ``reasoning_content`` (llama.cpp, SGLang, DeepSeek;
older vLLM sends both, read once), OpenRouter's ``reasoning_details`` (kept as opaque blocks
and sent back unmodified) and ``<think>…</think>`` inline in ``content`` (a server without a
reasoning parser; see :class:`~open_strawberry.backends.reply.ThinkSplitter`). Thinking is
never sent inside ``content``; earlier turns' thinking goes back in the provider's field
(:data:`REASONING_FIELDS`) as ``ChatRequest.reasoning_history`` says.
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

__all__ = ["REASONING_FIELDS", "OpenAIChatBackend", "decode_chat_completion", "merge_reasoning_details", "openai_body",
           "openai_usage"]

REASONING_FIELDS = {"vllm": "reasoning", "ollama": "reasoning", "llamacpp": "reasoning_content",
                    "sglang": "reasoning_content", "mock": "reasoning_content"}
"""{provider: the assistant message field its server renders earlier turns' thinking from}:
recent vLLM reads ``reasoning`` (and ignores ``reasoning_content``), llama-server the
opposite. With ``reasoning_history="auto"`` only these providers get thinking back; OpenAI,
Groq and the rest would refuse or ignore it."""


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _LlamaTimings(msgspec.Struct):
    prompt_n: int | None = None
    cache_n: int | None = None
    predicted_n: int | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None

    @property
    def thinking(self) -> str | None:
        # older vLLM sends the same text under both names: read it once
        return self.reasoning or self.reasoning_content


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    model: str | None = None
    timings: _LlamaTimings | None = None
    error: ErrorBody | None = None


class _Message(_Delta):
    pass


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

    __slots__ = ("details", "done", "finish", "model", "provider", "reply", "timings", "usage")

    def __init__(self, max_tokens: int, on_delta: DeltaCallback | None, provider: str) -> None:
        self.reply = ReplyBuilder(max_tokens, on_delta, provider, inline_think=True)
        self.provider = provider
        self.details: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.usage: _Usage | None = None
        self.timings: _LlamaTimings | None = None
        self.model: str | None = None
        self.done = False

    def event(self, name: str, data: bytes) -> bool:
        if data == b"[DONE]":
            self.done = True
            return True
        chunk = _chunk_decoder.decode(data)
        if chunk.error is not None:
            raise stream_error(self.provider, chunk.error)
        for choice in chunk.choices:
            if choice.delta is not None:
                _read_delta(choice.delta, self.reply, self.details)
            if choice.finish_reason:
                self.finish = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.timings is not None:
            self.timings = chunk.timings
        if chunk.model:
            self.model = chunk.model
        return False


def _read_delta(delta: _Delta, reply: ReplyBuilder, details: list[dict[str, Any]], *, whole: bool = False) -> None:
    """Hand one delta (or a ``whole`` message) to ``reply``: thinking first, as servers send it."""
    thinking = delta.thinking
    if delta.reasoning_details:
        details.extend(delta.reasoning_details)
        if thinking is None:  # OpenRouter sends the text in both; some providers only in details
            thinking = "".join(item.get("text") or item.get("summary") or "" for item in delta.reasoning_details
                               if isinstance(item, dict))
    if thinking:
        reply.thinking(thinking)
    if delta.content:
        (reply.whole_content if whole else reply.content)(delta.content)


def merge_reasoning_details(items: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """OpenRouter's ``reasoning_details`` of a reply, its streamed pieces joined: pieces of one
    item (the same ``index``, or no index, and the same ``type``) have their ``text``,
    ``summary`` or ``data`` joined and their other keys (the ``signature``, sent last) kept."""
    merged: list[dict[str, Any]] = []
    for item in items:
        last = merged[-1] if merged else None
        if last is not None and last.get("type") == item.get("type") and last.get("index") == item.get("index"):
            for key, value in item.items():
                if key in ("text", "summary", "data") and isinstance(value, str):
                    last[key] = (last.get(key) or "") + value
                elif value is not None:
                    last[key] = value
        else:
            merged.append(dict(item))
    return tuple(merged)


def openai_body(request: ChatRequest, model: str, provider: str, *, stream: bool,
                system_role: bool = True) -> dict[str, Any]:
    """The JSON body of a chat completion request (also the official SDK's keyword arguments).

    With ``system_role`` false (a model whose chat template has no system role), system
    messages are folded into the first user message, as such models are trained to read them.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    field = _history_field(request, provider)
    messages.extend(_message(m, field, request.reasoning_history != "drop") for m in request.messages)
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
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.extra_body:
        body.update(request.extra_body)
    return body


def _history_field(request: ChatRequest, provider: str) -> str | None:
    """The field earlier turns' thinking goes back in (None: it is not sent)."""
    if request.reasoning_history == "drop":
        return None
    if request.reasoning_history == "keep":
        return REASONING_FIELDS.get(provider, "reasoning_content")
    return REASONING_FIELDS.get(provider)


def _message(message: ChatMessage, field: str | None, details: bool) -> dict[str, Any]:
    """One message of the body: thinking never in ``content``; in ``field`` when one is given,
    and OpenRouter's ``reasoning_details`` unmodified unless history is dropped."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant":
        if field is not None and message.reasoning_content:
            out[field] = message.reasoning_content
        if details and message.reasoning_blocks:
            out["reasoning_details"] = list(message.reasoning_blocks)
    return out


def _fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        reader = _ChatStream(request.max_tokens, on_delta, self.provider)
        rate_limits = await self._stream("/chat/completions", body, reader, max_tokens=request.max_tokens)
        _check_finished(reader.finish, reader.done, self.provider)
        return _completion(reader.reply, reader.details, request, finish=reader.finish, usage=reader.usage,
                           timings=reader.timings, model=reader.model, rate_limits=rate_limits)

    async def _complete_whole(self, request: ChatRequest, body: bytes, on_delta: DeltaCallback | None) -> Completion:
        parsed, rate_limits, clock = await self._fetch("/chat/completions", body, _response_decoder,
                                                       max_tokens=request.max_tokens)
        return _whole(parsed, request, self.provider, on_delta, clock=clock, rate_limits=rate_limits)


def decode_chat_completion(raw: bytes, request: ChatRequest, provider: str, *,
                           clock: Stopwatch | None = None) -> Completion:
    """A whole ``chat.completion`` body (a batch's result line) read as a non-streamed call's
    reply is, arriving now on ``clock`` (started when the call was sent); raises
    :class:`StreamError` for a body that is not one, or not finished."""
    parsed, clock = arrived_whole(_response_decoder, raw, provider, "chat completion", clock)
    return _whole(parsed, request, provider, None, clock=clock, rate_limits=None)


def _whole(parsed: _Response, request: ChatRequest, provider: str, on_delta: DeltaCallback | None, *,
           clock: Stopwatch, rate_limits: RateLimits | None) -> Completion:
    if not parsed.choices:
        raise StreamError("the response has no choices", provider=provider)
    choice = parsed.choices[0]
    _check_finished(choice.finish_reason, True, provider)
    reply = ReplyBuilder(request.max_tokens, on_delta, provider, inline_think=True, clock=clock, timed=False)
    details: list[dict[str, Any]] = []
    _read_delta(choice.message, reply, details, whole=True)
    return _completion(reply, details, request, finish=choice.finish_reason, usage=parsed.usage,
                       timings=parsed.timings, model=parsed.model, rate_limits=rate_limits)


def _completion(reply: ReplyBuilder, details: list[dict[str, Any]], request: ChatRequest, *, finish: str | None,
                usage: _Usage | None, timings: _LlamaTimings | None, model: str | None,
                rate_limits: RateLimits | None) -> Completion:
    text, reasoning = reply.finish()
    reply.blocks.extend(merge_reasoning_details(details))
    return reply.completion(text, reasoning, finish_reason=finish, model=model, rate_limits=rate_limits,
                            usage=_usage(usage, timings, request, text, reasoning))


def _usage(usage: _Usage | None, timings: _LlamaTimings | None, request: ChatRequest, text: str,
           reasoning: str) -> Usage:
    reported: int | None = None
    if usage is not None:
        details = usage.prompt_tokens_details
        cached = details.cached_tokens if details is not None else None
        ours = openai_usage(usage.prompt_tokens, usage.completion_tokens, cached)
        completion_details = usage.completion_tokens_details
        reported = completion_details.reasoning_tokens if completion_details is not None else None
    elif timings is not None and timings.predicted_n is not None:
        cached = timings.cache_n or 0
        ours = Usage(input_tokens=(timings.prompt_n or 0) + cached, output_tokens=timings.predicted_n,
                     cache_read_tokens=cached)
    else:
        ours = Usage(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                     output_tokens=count_tokens(text) + count_tokens(reasoning), estimated=True)
    return with_reasoning_tokens(ours, reported, reasoning)


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
