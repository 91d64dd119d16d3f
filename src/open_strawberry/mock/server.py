"""A mock LLM server, wire-compatible with OpenAI chat completions and Anthropic messages.

Serves ``POST /v1/chat/completions``, ``POST /v1/messages`` and ``GET /v1/models``, streamed
(Server-Sent Events) and not, with the scripted :class:`~open_strawberry.mock.reasoner.Reasoner`
writing the replies. A latency model paces the stream: the first token after ``ttft_s``,
then ``tokens_per_chunk`` tokens per chunk at ``tokens_per_s``, each delay varied by up to
``jitter`` (a fraction), seeded. Usage counts are exact counts of
:mod:`open_strawberry.tokens` tokens; Anthropic prompt caching is simulated from the
``cache_control`` breakpoints of each request, with a time-to-live.

``flavor`` mimics other OpenAI-compatible servers: ``"llamacpp"`` sends a first chunk with
only the role, no usage chunk even when asked, and a ``timings`` object in the last chunk;
``"ollama"`` repeats the role in every chunk. ``keepalive_every`` interleaves ``: keep-alive``
comment lines, and ``error_after_chunks`` ends the stream with an ``error`` object.

Start it in-process with :func:`open_mock_server` (tests, the demo) or as
``open-strawberry mock-server`` (benchmarks, other programs). It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec
from aiohttp import web

from open_strawberry.mock.reasoner import Reasoner
from open_strawberry.tokens import count_tokens, split_tokens

__all__ = ["MockConfig", "MockServer", "open_mock_server", "serve_mock"]

_PER_MESSAGE = 4  # template tokens per message, as open_strawberry.tokens counts them


class MockConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the mock server can be told (also readable from TOML/JSON)."""

    model: str = "mock-reasoner"
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0  # 0: no pacing after the first token
    tokens_per_chunk: int = 1
    jitter: float = 0.0
    seed: int = 0
    accuracy: float = 0.8
    confident_after: int = 3
    flavor: Literal["openai", "llamacpp", "ollama"] = "openai"
    keepalive_every: int = 0
    error_after_chunks: int | None = None
    cache_ttl_s: float = 300.0
    api_key: str | None = None  # when set, requests must carry this key


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


class _Block(msgspec.Struct):
    type: str = "text"
    text: str = ""
    cache_control: dict[str, Any] | None = None


class _AnthropicMessage(msgspec.Struct):
    role: str
    content: str | list[_Block]


class _MessagesBody(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[_AnthropicMessage]
    system: str | list[_Block] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None


_chat_decoder = msgspec.json.Decoder(_ChatBody)
_messages_decoder = msgspec.json.Decoder(_MessagesBody)
_encode = msgspec.json.encode


def _text(content: str | Sequence[_Part] | Sequence[_Block] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if part.type == "text")


class MockServer:
    """The mock's state: its config, reasoner, prompt cache and request counters."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.reasoner = Reasoner(accuracy=self.config.accuracy, confident_after=self.config.confident_after,
                                 seed=self.config.seed)
        self.url = ""
        self.requests = 0
        self._rng = random.Random(self.config.seed)
        self._ids = itertools.count(1)
        self._cache: dict[bytes, float] = {}  # {prefix digest: expiry (monotonic s)}

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        return app

    # ------------------------------------------------------------------ helpers

    def _delay(self, seconds: float) -> float:
        jitter = self.config.jitter
        return max(0.0, seconds * (1 + self._rng.uniform(-jitter, jitter))) if jitter else seconds

    def _chunks(self, text: str) -> list[str]:
        tokens = split_tokens(text)
        size = max(1, self.config.tokens_per_chunk)
        return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]

    async def _pace(self, index: int, chunk: str) -> None:
        if index == 0:
            if self.config.ttft_s:
                await anyio.sleep(self._delay(self.config.ttft_s))
        elif self.config.tokens_per_s:
            await anyio.sleep(self._delay(count_tokens(chunk) / self.config.tokens_per_s))

    def _reply(self, system: str, turns: list[tuple[str, str]], seed: int | None, max_tokens: int | None,
               stops: Sequence[str]) -> tuple[str, str]:
        """(text, finish reason) after the max_tokens cut and stop sequences."""
        text = self.reasoner.reply(system, turns, seed)
        finish = "stop"
        for stop in stops:
            if stop and stop in text:
                text = text[: text.index(stop)]
        if max_tokens is not None:
            tokens = split_tokens(text)
            if len(tokens) > max_tokens:
                text, finish = "".join(tokens[:max_tokens]), "length"
        return text, finish

    def _unauthorized(self, request: web.Request, anthropic: bool) -> web.Response | None:
        key = self.config.api_key
        if key is None:
            return None
        given = request.headers.get("x-api-key") if anthropic else request.headers.get("authorization", "")
        if given in (key, f"Bearer {key}"):
            return None
        if anthropic:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        return _openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    # ------------------------------------------------------------------- OpenAI

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if (denied := self._unauthorized(request, anthropic=False)) is not None:
            return denied
        try:
            body = _chat_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            return _openai_error(400, f"Invalid request body: {exc}", "invalid_request_error", None)
        system = "\n".join(_text(m.content) for m in body.messages if m.role in ("system", "developer"))
        turns = [(m.role, _text(m.content)) for m in body.messages if m.role in ("user", "assistant")]
        stops = [body.stop] if isinstance(body.stop, str) else body.stop or []
        text, finish = self._reply(system, turns, body.seed, body.max_completion_tokens or body.max_tokens, stops)
        prompt_tokens = sum(count_tokens(_text(m.content)) + _PER_MESSAGE for m in body.messages) + 2
        completion_tokens = count_tokens(text)
        ident = f"chatcmpl-mock{next(self._ids)}"
        created = int(time.time())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        headers = {"x-request-id": f"req_mock{self.requests}"}
        if not body.stream:
            payload: dict[str, Any] = {
                "id": ident, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            return web.Response(body=_encode(payload), content_type="application/json", headers=headers)

        flavor = self.config.flavor
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                                               **headers})
        await response.prepare(request)
        head = f'{{"id":"{ident}","object":"chat.completion.chunk","created":{created},"model":'.encode() \
            + _encode(body.model) + b',"system_fingerprint":null,"choices":'

        def chunk(choices: bytes, extra: bytes = b',"usage":null') -> bytes:
            return b"data: " + head + choices + extra + b"}\n\n"

        def delta(content: str | None, finish_reason: str | None = None, role: bool = False) -> bytes:
            fields = []
            if role or flavor == "ollama":
                fields.append(b'"role":"assistant"')
            if content is not None:
                fields.append(b'"content":' + _encode(content))
            return (b'[{"index":0,"delta":{' + b",".join(fields) + b'},"logprobs":null,"finish_reason":'
                    + _encode(finish_reason) + b"}]")

        first = delta(None, role=True) if flavor == "llamacpp" else delta("", role=True)
        await response.write(chunk(first))
        for index, piece in enumerate(self._chunks(text)):
            if self.config.error_after_chunks is not None and index >= self.config.error_after_chunks:
                error = {"error": {"message": "The server had an error while processing your request.",
                                   "type": "server_error", "param": None, "code": None}}
                await response.write(b"data: " + _encode(error) + b"\n\n")
                await response.write_eof()
                return response
            if self.config.keepalive_every and index and index % self.config.keepalive_every == 0:
                await response.write(b": keep-alive\n\n")
            await self._pace(index, piece)
            await response.write(chunk(delta(piece)))
        if flavor == "llamacpp":
            timings = {"prompt_n": prompt_tokens, "prompt_ms": 1.0, "predicted_n": completion_tokens,
                       "predicted_ms": 1.0, "cache_n": 0}
            await response.write(chunk(delta(None, finish), b',"timings":' + _encode(timings)))
        else:
            await response.write(chunk(delta(None, finish)))
            if (body.stream_options or {}).get("include_usage"):
                await response.write(chunk(b"[]", b',"usage":' + _encode(usage)))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ---------------------------------------------------------------- Anthropic

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if (denied := self._unauthorized(request, anthropic=True)) is not None:
            return denied
        try:
            body = _messages_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            return _anthropic_error(400, "invalid_request_error", f"invalid request: {exc}")
        system_blocks = ([_Block(text=body.system)] if isinstance(body.system, str) else body.system or [])
        system = "\n".join(block.text for block in system_blocks)
        turns = [(m.role, _text(m.content)) for m in body.messages]
        text, finish = self._reply(system, turns, None, body.max_tokens, body.stop_sequences or [])
        read, written, uncached = self._cache_usage(system_blocks, body.messages)
        output_tokens = count_tokens(text)
        ident = f"msg_mock{next(self._ids)}"
        stop_reason = "end_turn" if finish == "stop" else "max_tokens"
        usage = {"input_tokens": uncached, "cache_creation_input_tokens": written,
                 "cache_read_input_tokens": read, "output_tokens": output_tokens}
        headers = {"request-id": f"req_mock{self.requests}"}
        if not body.stream:
            payload = {"id": ident, "type": "message", "role": "assistant", "model": body.model,
                       "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
                       "stop_sequence": None, "usage": usage}
            return web.Response(body=_encode(payload), content_type="application/json", headers=headers)

        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                                               **headers})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n")

        await event("message_start", {"type": "message_start", "message": {
            "id": ident, "type": "message", "role": "assistant", "model": body.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
        await event("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
        await event("ping", {"type": "ping"})
        for index, piece in enumerate(self._chunks(text)):
            if self.config.error_after_chunks is not None and index >= self.config.error_after_chunks:
                await event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                await response.write_eof()
                return response
            await self._pace(index, piece)
            await event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": piece}})
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                       "usage": {"output_tokens": output_tokens}})
        await event("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response

    def _cache_usage(self, system: Sequence[_Block], messages: Sequence[_AnthropicMessage]) -> tuple[int, int, int]:
        """(cache reads, cache writes, uncached input tokens) of one request.

        Every block marked ``cache_control`` is a breakpoint: the prompt up to and including
        it can be cached. The longest breakpoint prefix seen within the time-to-live is read
        from the cache; the tokens from there to the last breakpoint are written to it.
        """
        now = time.monotonic()
        encoder = msgspec.json.Encoder()
        prefix = bytearray()
        tokens = 0
        breakpoints: list[tuple[bytes, int]] = []  # (prompt prefix, tokens up to its end)
        sections: list[tuple[str, Sequence[_Block]]] = [("system", system)]
        for message in messages:
            content = [_Block(text=message.content)] if isinstance(message.content, str) else message.content
            sections.append((message.role, content))
        for role, blocks in sections:
            if role != "system":
                tokens += _PER_MESSAGE
            for block in blocks:
                tokens += count_tokens(block.text)
                prefix += encoder.encode((role, block.text))
                if block.cache_control is not None:
                    breakpoints.append((bytes(prefix), tokens))
        total = tokens + 2
        read = 0
        for key, upto in breakpoints:
            if self._cache.get(key, 0.0) > now:
                read = upto
        written = max(0, breakpoints[-1][1] - read) if breakpoints else 0
        for key, _ in breakpoints:
            self._cache[key] = now + self.config.cache_ttl_s
        return read, written, total - read - written

    async def _models(self, request: web.Request) -> web.Response:
        model = self.config.model
        if "anthropic-version" in request.headers:
            payload: dict[str, Any] = {
                "data": [{"type": "model", "id": model, "display_name": "Mock reasoner",
                          "created_at": "2024-01-01T00:00:00Z"}],
                "has_more": False, "first_id": model, "last_id": model}
        else:
            payload = {"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                                   "owned_by": "open-strawberry"}]}
        return web.Response(body=_encode(payload), content_type="application/json")


def _openai_error(status: int, message: str, kind: str, code: str | None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, body=_encode(body), content_type="application/json")


def _anthropic_error(status: int, kind: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.Response(status=status, body=_encode(body), content_type="application/json")


@asynccontextmanager
async def open_mock_server(config: MockConfig | None = None, *, host: str = "127.0.0.1",
                           port: int = 0) -> AsyncIterator[MockServer]:
    """Serve the mock in this event loop; yields once it accepts connections (``port=0``:
    any free port, see ``server.url``). Stops and closes every connection on exit."""
    server = MockServer(config)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        server.url = f"http://{bound_host}:{bound_port}"
        yield server
    finally:
        await runner.cleanup()


async def serve_mock(config: MockConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                     task_status: anyio.abc.TaskStatus[MockServer] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports the running server through ``task_status`` (for
    ``task_group.start``)."""
    async with open_mock_server(config, host=host, port=port) as server:
        task_status.started(server)
        await anyio.sleep_forever()
