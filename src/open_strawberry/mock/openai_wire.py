"""The OpenAI chat completions wire format (``POST /v1/chat/completions``), as the mock speaks it.

``flavor`` mimics other OpenAI-compatible servers: ``"llamacpp"`` sends a first chunk with
only the role, no usage chunk even when asked, and a ``timings`` object in the last chunk;
``"ollama"`` repeats the role in every chunk.

``thinking`` makes it a reasoning model's server (see
:data:`~open_strawberry.mock.config.Thinking`): the reply's thinking in ``reasoning``,
``reasoning_content``, both, OpenRouter's ``reasoning`` and signed ``reasoning_details``, or
inline in ``content`` as ``<think>…</think>`` (with or without its opening tag), before the
text; its token count in ``usage.completion_tokens_details.reasoning_tokens``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
from aiohttp import web

from open_strawberry.backends.tokens import estimate_prompt_tokens
from open_strawberry.mock import wire
from open_strawberry.mock.config import Thinking
from open_strawberry.mock.signing import Signer

__all__ = ["OpenAIWire"]


class _Part(msgspec.Struct):
    type: str = "text"
    text: str = ""


class _Message(msgspec.Struct):
    role: str
    content: str | list[_Part] | None = None


class _ChatBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False  # vLLM's: keep generating until max_tokens (benchmarks use it)
    reasoning_effort: str | None = None


_decoder = msgspec.json.Decoder(_ChatBody)

Flavor = Literal["openai", "llamacpp", "ollama"]


def _error(status: int, message: str, kind: str, code: str | None) -> web.Response:
    return wire.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def _duration(seconds: float) -> str:
    """An OpenAI-style duration: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


def _usage(reply: wire.Reply) -> dict[str, Any]:
    prompt = reply.prompt.uncached
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": reply.output_tokens,
                             "total_tokens": prompt + reply.output_tokens,
                             "prompt_tokens_details": {"cached_tokens": reply.prompt.cache_read}}
    if reply.thinking:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.thinking_tokens}
    return usage


_OPEN_TAG, _CLOSE_TAG = "<think>\n", "\n</think>\n\n"


class _ThinkingForm:
    """Where the wire puts a reply's thinking, in its ``thinking`` mode."""

    def __init__(self, mode: Thinking, signer: Signer) -> None:
        self.mode = mode
        self.signer = signer

    @property
    def inline(self) -> bool:
        return self.mode in ("think_tags", "think_tags_open")

    def opening_tag(self) -> str:
        return _OPEN_TAG if self.mode == "think_tags" else ""

    def fields(self, thinking: str) -> dict[str, Any]:
        """The message (or delta) fields that carry ``thinking`` in a field mode."""
        if self.mode == "both":
            return {"reasoning": thinking, "reasoning_content": thinking}
        if self.mode == "reasoning_details":
            return {"reasoning": thinking, "reasoning_details": [
                {"type": "reasoning.text", "text": thinking, "format": "unknown", "index": 0}]}
        return {self.mode: thinking}

    def signature(self, thinking: str) -> dict[str, Any]:
        """OpenRouter's last detail of a streamed thinking: its signature."""
        return {"reasoning_details": [{"type": "reasoning.text", "text": "", "format": "unknown", "index": 0,
                                       "signature": self.signer.signature(thinking)}]}

    def message(self, reply: wire.Reply) -> dict[str, Any]:
        """The whole message of a non-streamed reply."""
        if not reply.thinking:
            return {"role": "assistant", "content": reply.text}
        if self.inline:
            return {"role": "assistant", "content": self.opening_tag() + reply.thinking + _CLOSE_TAG + reply.text}
        fields = self.fields(reply.thinking)
        if self.mode == "reasoning_details":
            fields["reasoning_details"][0]["signature"] = self.signer.signature(reply.thinking)
        return {"role": "assistant", "content": reply.text, **fields}


class OpenAIWire:
    """Chat completions: ``Authorization: Bearer`` keys, ``chat.completion(.chunk)`` bodies,
    ``x-ratelimit-*`` headers (requests and tokens only) and ``data: [DONE]``."""

    request_id_header = "x-request-id"

    def __init__(self, flavor: Flavor = "openai", thinking: Thinking = "off", seed: int = 0) -> None:
        self.flavor = flavor
        self.thinking = _ThinkingForm(thinking, Signer(seed))

    def authorized(self, headers: Mapping[str, str], key: str) -> bool:
        return headers.get("authorization", "") in (key, f"Bearer {key}")

    def unauthorized(self) -> web.Response:
        return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def decode(self, raw: bytes) -> wire.Call[_ChatBody]:
        body = _decoder.decode(raw)
        system = [wire.join_text(m.content) for m in body.messages if m.role in ("system", "developer")]
        return wire.Call(body=body, model=body.model, system="\n".join(system),
                         turns=[(m.role, wire.join_text(m.content)) for m in body.messages
                                if m.role in ("user", "assistant")],
                         stream=body.stream, max_tokens=body.max_completion_tokens or body.max_tokens,
                         stops=[body.stop] if isinstance(body.stop, str) else body.stop or [],
                         seed=body.seed, fill=body.ignore_eos,
                         think=self.thinking.mode != "off" and body.reasoning_effort != "none")

    def bad_request(self, problem: str) -> web.Response:
        return _error(400, f"Invalid request body: {problem}", "invalid_request_error", None)

    def error(self, status: int, kind: str, message: str) -> web.Response:
        if status == 429:
            return _error(status, message, "requests", "rate_limit_exceeded")
        return _error(status, message, "server_error", None)

    def rate_limited(self, budget: str, limit: int, cost: int, wait_s: float) -> web.Response:
        kind = "requests" if budget == "requests" else "tokens"
        label = "requests per min (RPM)" if budget == "requests" else "tokens per min (TPM)"
        return _error(429, f"Rate limit reached for {label}: Limit {limit}, Requested {cost}. "
                           f"Please try again in {wait_s:.3g}s.", kind, "rate_limit_exceeded")

    def rate_headers(self, windows: Sequence[wire.RateWindow]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for window in windows:
            if window.name in ("requests", "tokens"):  # OpenAI has no separate input/output budgets
                headers.update({f"x-ratelimit-limit-{window.name}": str(window.limit),
                                f"x-ratelimit-remaining-{window.name}": str(window.remaining),
                                f"x-ratelimit-reset-{window.name}": _duration(window.full_in_s)})
        return headers

    def prompt_tokens(self, call: wire.Call[_ChatBody]) -> wire.PromptTokens:
        messages = [wire.chat_message(m.role, wire.join_text(m.content)) for m in call.body.messages]
        return wire.PromptTokens(estimate_prompt_tokens(messages))

    def body(self, call: wire.Call[_ChatBody], reply: wire.Reply) -> bytes:
        return wire.encode({
            "id": f"chatcmpl-mock{reply.number}", "object": "chat.completion", "created": int(time.time()),
            "model": call.model,
            "choices": [{"index": 0, "message": self.thinking.message(reply),
                         "logprobs": None, "finish_reason": reply.finish}],
            "usage": _usage(reply),
        })

    def frames(self, call: wire.Call[_ChatBody], reply: wire.Reply) -> _ChunkFrames:
        include_usage = bool((call.body.stream_options or {}).get("include_usage"))
        return _ChunkFrames(call.model, reply, self.flavor, self.thinking, include_usage=include_usage)

    def models(self, model: str) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                            "owned_by": "open-strawberry"}]}


class _ChunkFrames:
    """``data: {chat.completion.chunk}`` events, written by hand around a shared head: a
    stream of many small chunks is the mock's hot path."""

    def __init__(self, model: str, reply: wire.Reply, flavor: Flavor, thinking: _ThinkingForm, *,
                 include_usage: bool) -> None:
        self.reply = reply
        self.flavor = flavor
        self.form = thinking
        self.state = "none"  # of the thinking: none, then open while thoughts stream, then closed
        self.include_usage = include_usage
        self._head = (f'{{"id":"chatcmpl-mock{reply.number}","object":"chat.completion.chunk",'
                      f'"created":{int(time.time())},"model":').encode() \
            + wire.encode(model) + b',"system_fingerprint":null,"choices":'

    def _chunk(self, choices: bytes, extra: bytes = b',"usage":null') -> bytes:
        return b"data: " + self._head + choices + extra + b"}\n\n"

    def _delta(self, content: str | None, finish_reason: str | None = None, role: bool = False,
               extra: dict[str, Any] | None = None) -> bytes:
        fields = []
        if role or self.flavor == "ollama":
            fields.append(b'"role":"assistant"')
        if content is not None:
            fields.append(b'"content":' + wire.encode(content))
        for name, value in (extra or {}).items():
            fields.append(wire.encode(name) + b":" + wire.encode(value))
        return (b'[{"index":0,"delta":{' + b",".join(fields) + b'},"logprobs":null,"finish_reason":'
                + wire.encode(finish_reason) + b"}]")

    def opening(self) -> bytes:
        return self._chunk(self._delta(None if self.flavor == "llamacpp" else "", role=True))

    def thought(self, text: str) -> bytes:
        opening = self.state == "none"
        self.state = "open"
        if self.form.inline:
            return self._chunk(self._delta((self.form.opening_tag() if opening else "") + text))
        return self._chunk(self._delta(None, extra=self.form.fields(text)))

    def _close_thinking(self) -> tuple[str, bytes]:
        """What ends the thinking: the closing tag to put before the next content, or the
        signature chunk of OpenRouter's details."""
        if self.state != "open":
            return "", b""
        self.state = "closed"
        if self.form.inline:
            return _CLOSE_TAG, b""
        if self.form.mode == "reasoning_details":
            return "", self._chunk(self._delta(None, extra=self.form.signature(self.reply.thinking)))
        return "", b""

    def piece(self, text: str) -> bytes:
        tag, chunk = self._close_thinking()
        return chunk + self._chunk(self._delta(tag + text))

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def error(self) -> bytes:
        error = {"error": {"message": "The server had an error while processing your request.",
                           "type": "server_error", "param": None, "code": None}}
        return b"data: " + wire.encode(error) + b"\n\n"

    def cut_off(self) -> bytes:
        return b"data: [DONE]\n\n"

    def closing(self) -> bytes:
        reply = self.reply
        tag, ended = self._close_thinking()
        if tag:
            ended += self._chunk(self._delta(tag.rstrip()))
        return ended + self._last(reply)

    def _last(self, reply: wire.Reply) -> bytes:
        if self.flavor == "llamacpp":  # no usage chunk, even when asked: timings instead
            timings = {"prompt_n": reply.prompt.uncached, "prompt_ms": 1.0, "predicted_n": reply.output_tokens,
                       "predicted_ms": 1.0, "cache_n": 0}
            last = self._chunk(self._delta(None, reply.finish), b',"timings":' + wire.encode(timings))
        else:
            last = self._chunk(self._delta(None, reply.finish))
            if self.include_usage:
                last += self._chunk(b"[]", b',"usage":' + wire.encode(_usage(reply)))
        return last + b"data: [DONE]\n\n"
