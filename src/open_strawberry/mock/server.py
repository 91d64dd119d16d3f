"""A mock LLM server, wire-compatible with OpenAI chat completions and Anthropic messages.

Serves ``POST /v1/chat/completions``, ``POST /v1/messages`` and ``GET /v1/models``
(and ``GET /mock/stats``: requests served, 429s sent, faults injected), streamed
(Server-Sent Events) and not, with the scripted :class:`~open_strawberry.mock.reasoner.Reasoner`
writing the replies. A latency model paces the stream: the first token after ``ttft_s``,
then ``tokens_per_chunk`` tokens per chunk at ``tokens_per_s``, each delay varied by up to
``jitter`` (a fraction), seeded. Usage counts are exact counts of
:mod:`open_strawberry.backends.tokens` tokens; Anthropic prompt caching is simulated from the
``cache_control`` breakpoints of each request, with a time-to-live.

Per-minute budgets (``rpm``, ``tpm``, ``input_tpm``, ``output_tpm``) are enforced with the
providers' 429 bodies and rate-limit headers (sent on every response), and ``faults``
injects failures at seeded rates: 500, 503, 529, 429 with and without ``retry-after``, a
connection dropped mid-stream, a truncated stream, a malformed chunk, a stall.

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
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec
from aiohttp import web

from open_strawberry.backends.tokens import count_tokens, split_tokens
from open_strawberry.limiter.buckets import TokenBucket
from open_strawberry.mock.reasoner import Reasoner

__all__ = ["FaultRates", "MockConfig", "MockServer", "open_mock_server", "serve_mock"]

_PER_MESSAGE = 4  # template tokens per message, as open_strawberry.backends.tokens counts them


class FaultRates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Probabilities, per request, of each injected fault (drawn from a seeded generator)."""

    http_500: float = 0.0
    http_503: float = 0.0
    http_529: float = 0.0  # overloaded
    http_429: float = 0.0  # with retry-after
    http_429_bare: float = 0.0  # without any retry hint
    drop_mid_stream: float = 0.0  # the connection is cut after a few chunks
    truncated_sse: float = 0.0  # the stream ends cleanly in the middle of an event
    malformed_chunk: float = 0.0  # a chunk that is not JSON
    stall: float = 0.0  # the server goes silent for ``stall_s`` after a few chunks

    @classmethod
    def spread(cls, total: float) -> FaultRates:
        """``total`` shared equally by every kind of fault."""
        share = total / len(cls.__struct_fields__)
        return cls(**dict.fromkeys(cls.__struct_fields__, share))

    def pick(self, draw: float) -> str | None:
        for name in self.__struct_fields__:
            rate = getattr(self, name)
            if draw < rate:
                return str(name)
            draw -= rate
        return None


class MockConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the mock server can be told (also readable from TOML/JSON).

    ``rpm``, ``tpm``, ``input_tpm`` and ``output_tpm`` are per-minute budgets enforced like
    the providers do (buckets that start full and refill continuously); a request that does
    not fit gets a 429 with the provider's body and headers. ``faults`` injects failures.
    """

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
    rpm: float | None = None
    tpm: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    faults: FaultRates = FaultRates()
    fault_retry_after_s: float = 0.5
    stall_s: float = 30.0


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
        self._fault_rng = random.Random(f"{self.config.seed}:faults")
        self._faulty = any(getattr(self.config.faults, name) for name in FaultRates.__struct_fields__)
        now = time.monotonic()
        budgets = {"requests": self.config.rpm, "tokens": self.config.tpm,
                   "input_tokens": self.config.input_tpm, "output_tokens": self.config.output_tpm}
        self._buckets = {name: TokenBucket(limit, now=now) for name, limit in budgets.items() if limit}
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()  # {fault name: times injected}

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/mock/stats", self._stats)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        """What the mock has served: for tests and benchmarks in other processes."""
        stats = {"requests": self.requests, "rate_limited": self.rate_limited, "faults": dict(self.faults)}
        return web.Response(body=_encode(stats), content_type="application/json")

    # ------------------------------------------------------------------ helpers

    def _delay(self, seconds: float) -> float:
        jitter = self.config.jitter
        return max(0.0, seconds * (1 + self._rng.uniform(-jitter, jitter))) if jitter else seconds

    def _chunks(self, text: str) -> list[str]:
        tokens = split_tokens(text)
        size = max(1, self.config.tokens_per_chunk)
        return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]

    def _paced(self, index: int) -> bool:
        """Whether chunk ``index`` waits before it is sent."""
        return bool(self.config.ttft_s) if index == 0 else bool(self.config.tokens_per_s)

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

    def _draw_fault(self) -> str | None:
        if not self._faulty:
            return None
        fault = self.config.faults.pick(self._fault_rng.random())
        if fault is not None:
            self.faults[fault] += 1
        return fault

    def _charge(self, costs: dict[str, int]) -> str | None:
        """Take ``costs`` from the budgets; the name of the first that cannot pay, else None."""
        if not self._buckets:
            return None
        now = time.monotonic()
        for bucket in self._buckets.values():
            bucket.refill(now)
        for name, bucket in self._buckets.items():
            cost = costs.get(name, 0)
            if bucket.level < cost:
                self.rate_limited += 1
                return name
        for name, bucket in self._buckets.items():
            bucket.take(costs.get(name, 0))
        return None

    def _wait_for(self, budget: str, cost: int) -> float:
        bucket = self._buckets[budget]
        return max(0.001, bucket.time_to_fit(cost))

    def _rate_headers(self, anthropic: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        now = time.monotonic()
        for name, bucket in self._buckets.items():
            bucket.refill(now)
            remaining = max(0, int(bucket.level))
            full_in = (bucket.capacity - bucket.level) / bucket.rate if bucket.rate else 0.0
            if anthropic:
                prefix = f"anthropic-ratelimit-{name.replace('_', '-')}"
                reset = datetime.fromtimestamp(time.time() + full_in, tz=UTC).isoformat().replace(
                    "+00:00", "Z")
                headers.update({f"{prefix}-limit": str(int(bucket.capacity)), f"{prefix}-remaining": str(remaining),
                                f"{prefix}-reset": reset})
            elif name in ("requests", "tokens"):
                headers.update({f"x-ratelimit-limit-{name}": str(int(bucket.capacity)),
                                f"x-ratelimit-remaining-{name}": str(remaining),
                                f"x-ratelimit-reset-{name}": _duration(full_in)})
        return headers

    def _fault_response(self, fault: str, anthropic: bool) -> web.Response | None:
        """The error response of a status fault (None for faults that hit the stream)."""
        wait = self.config.fault_retry_after_s
        hinted = {"retry-after": f"{wait:g}", "retry-after-ms": f"{wait * 1000:.0f}"}
        table: dict[str, tuple[int, str, str, dict[str, str]]] = {
            "http_500": (500, "api_error", "The server had an error while processing your request.", {}),
            "http_503": (503, "api_error", "The engine is currently overloaded, please try again later.", {}),
            "http_529": (529, "overloaded_error", "Overloaded", {}),
            "http_429": (429, "rate_limit_error", "Rate limit reached. Please try again later.", hinted),
            "http_429_bare": (429, "rate_limit_error", "Rate limit reached. Please try again later.", {}),
        }
        if fault not in table:
            return None
        status, kind, message, headers = table[fault]
        if anthropic:
            response = _anthropic_error(status, kind, message)
        else:
            response = _openai_error(status, message, "requests" if status == 429 else "server_error",
                                     "rate_limit_exceeded" if status == 429 else None)
        response.headers.update(headers)
        return response

    def _rate_limited_response(self, budget: str, cost: int, anthropic: bool) -> web.Response:
        wait = self._wait_for(budget, cost)
        limit = int(self._buckets[budget].capacity)
        if anthropic:
            response = _anthropic_error(429, "rate_limit_error",
                                        f"This request would exceed the rate limit of {limit} {budget} per minute.")
        else:
            kind = "requests" if budget == "requests" else "tokens"
            label = "requests per min (RPM)" if budget == "requests" else "tokens per min (TPM)"
            response = _openai_error(429, f"Rate limit reached for {label}: Limit {limit}, Requested {cost}. "
                                          f"Please try again in {wait:.3g}s.", kind, "rate_limit_exceeded")
        response.headers.update({**self._rate_headers(anthropic), "retry-after": str(max(1, round(wait))),
                                 "retry-after-ms": f"{wait * 1000:.0f}"})
        return response

    async def _stream_fault(self, fault: str | None, index: int, response: web.StreamResponse,
                            request: web.Request) -> bool:
        """Apply a stream fault before chunk ``index``; True when the stream must end now."""
        if fault is None or index != 2:
            return False
        if fault == "stall":
            await anyio.sleep(self.config.stall_s)
            return False
        if fault == "malformed_chunk":
            await response.write(b"data: {this is not json}\n\n")
            return False
        if fault == "truncated_sse":
            await response.write(b'data: {"id": "cut-off')
            await response.write_eof()
            return True
        if fault == "drop_mid_stream" and request.transport is not None:
            request.transport.close()
            return True
        return False

    async def _whole_fault(self, fault: str | None, request: web.Request, body: bytes) -> web.StreamResponse | None:
        """A stream fault applied to a non-streamed response."""
        if fault == "stall":
            await anyio.sleep(self.config.stall_s)
        elif fault == "malformed_chunk":
            return web.Response(body=b"{this is not json}", content_type="application/json")
        elif fault == "truncated_sse":
            return web.Response(body=body[: len(body) // 2], content_type="application/json")
        elif fault == "drop_mid_stream" and request.transport is not None:
            request.transport.close()
            return web.Response(status=500)
        return None

    # ------------------------------------------------------------------- OpenAI

    async def _admit(self, request: web.Request, decoder: msgspec.json.Decoder[Any],
                     anthropic: bool) -> tuple[Any, str | None] | web.Response:
        """Count the request, check its key, decode its body and draw its fault: ``(body,
        fault)``, or the error response that ends it here."""
        self.requests += 1
        if (denied := self._unauthorized(request, anthropic=anthropic)) is not None:
            return denied
        try:
            body = decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            if anthropic:
                return _anthropic_error(400, "invalid_request_error", f"invalid request: {exc}")
            return _openai_error(400, f"Invalid request body: {exc}", "invalid_request_error", None)
        fault = self._draw_fault()
        if fault is not None and (failed := self._fault_response(fault, anthropic=anthropic)) is not None:
            return failed
        return body, fault

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._admit(request, _chat_decoder, anthropic=False)
        if isinstance(admitted, web.Response):
            return admitted
        body: _ChatBody = admitted[0]
        fault = admitted[1]
        system = "\n".join(_text(m.content) for m in body.messages if m.role in ("system", "developer"))
        turns = [(m.role, _text(m.content)) for m in body.messages if m.role in ("user", "assistant")]
        stops = [body.stop] if isinstance(body.stop, str) else body.stop or []
        limit = body.max_completion_tokens or body.max_tokens
        text, finish = self._reply(system, turns, body.seed, limit, stops)
        if body.ignore_eos and limit:
            text, finish = _fill(text, limit), "length"
        prompt_tokens = sum(count_tokens(_text(m.content)) + _PER_MESSAGE for m in body.messages) + 2
        completion_tokens = count_tokens(text)
        costs = {"requests": 1, "tokens": prompt_tokens + completion_tokens, "input_tokens": prompt_tokens,
                 "output_tokens": completion_tokens}
        if (short := self._charge(costs)) is not None:
            return self._rate_limited_response(short, costs[short], anthropic=False)
        ident = f"chatcmpl-mock{next(self._ids)}"
        created = int(time.time())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        headers = {"x-request-id": f"req_mock{self.requests}", **self._rate_headers(anthropic=False)}
        if not body.stream:
            payload: dict[str, Any] = {
                "id": ident, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            encoded = _encode(payload)
            return await self._whole_fault(fault, request, encoded) or web.Response(
                body=encoded, content_type="application/json", headers=headers)

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
        out = _Writer(response)
        out.add(chunk(first))
        for index, piece in enumerate(self._chunks(text)):
            if fault is not None:
                await out.flush()
                if await self._stream_fault(fault, index, response, request):
                    return response
            if self.config.error_after_chunks is not None and index >= self.config.error_after_chunks:
                error = {"error": {"message": "The server had an error while processing your request.",
                                   "type": "server_error", "param": None, "code": None}}
                out.add(b"data: " + _encode(error) + b"\n\n")
                await out.flush()
                await response.write_eof()
                return response
            if self.config.keepalive_every and index and index % self.config.keepalive_every == 0:
                out.add(b": keep-alive\n\n")
            if self._paced(index):
                await out.flush()
                await self._pace(index, piece)
            out.add(chunk(delta(piece)))
        if flavor == "llamacpp":
            timings = {"prompt_n": prompt_tokens, "prompt_ms": 1.0, "predicted_n": completion_tokens,
                       "predicted_ms": 1.0, "cache_n": 0}
            out.add(chunk(delta(None, finish), b',"timings":' + _encode(timings)))
        else:
            out.add(chunk(delta(None, finish)))
            if (body.stream_options or {}).get("include_usage"):
                out.add(chunk(b"[]", b',"usage":' + _encode(usage)))
        out.add(b"data: [DONE]\n\n")
        await out.flush()
        await response.write_eof()
        return response

    # ---------------------------------------------------------------- Anthropic

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._admit(request, _messages_decoder, anthropic=True)
        if isinstance(admitted, web.Response):
            return admitted
        body: _MessagesBody = admitted[0]
        fault = admitted[1]
        system_blocks = ([_Block(text=body.system)] if isinstance(body.system, str) else body.system or [])
        system = "\n".join(block.text for block in system_blocks)
        turns = [(m.role, _text(m.content)) for m in body.messages]
        text, finish = self._reply(system, turns, None, body.max_tokens, body.stop_sequences or [])
        read, written, uncached = self._cache_usage(system_blocks, body.messages)
        output_tokens = count_tokens(text)
        # cache reads do not count toward the input budget, as with Anthropic's current models
        costs = {"requests": 1, "tokens": uncached + written + output_tokens, "input_tokens": uncached + written,
                 "output_tokens": output_tokens}
        if (short := self._charge(costs)) is not None:
            return self._rate_limited_response(short, costs[short], anthropic=True)
        ident = f"msg_mock{next(self._ids)}"
        stop_reason = "end_turn" if finish == "stop" else "max_tokens"
        usage = {"input_tokens": uncached, "cache_creation_input_tokens": written,
                 "cache_read_input_tokens": read, "output_tokens": output_tokens}
        headers = {"request-id": f"req_mock{self.requests}", **self._rate_headers(anthropic=True)}
        if not body.stream:
            payload = {"id": ident, "type": "message", "role": "assistant", "model": body.model,
                       "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
                       "stop_sequence": None, "usage": usage}
            encoded = _encode(payload)
            return await self._whole_fault(fault, request, encoded) or web.Response(
                body=encoded, content_type="application/json", headers=headers)

        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                                               **headers})
        await response.prepare(request)

        out = _Writer(response)

        def event(name: str, data: dict[str, Any]) -> None:
            out.add(b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n")

        event("message_start", {"type": "message_start", "message": {
            "id": ident, "type": "message", "role": "assistant", "model": body.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})
        event("ping", {"type": "ping"})
        for index, piece in enumerate(self._chunks(text)):
            if fault is not None:
                await out.flush()
                if await self._stream_fault(fault, index, response, request):
                    return response
            if self.config.error_after_chunks is not None and index >= self.config.error_after_chunks:
                event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                await out.flush()
                await response.write_eof()
                return response
            if self._paced(index):
                await out.flush()
                await self._pace(index, piece)
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": piece}})
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                "usage": {"output_tokens": output_tokens}})
        event("message_stop", {"type": "message_stop"})
        await out.flush()
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


class _Writer:
    """Holds a stream's bytes between waits: an unpaced reply goes out in one write, not one
    per chunk (as a busy real server's would), which keeps the mock cheap under load."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.pending: list[bytes] = []

    def add(self, data: bytes) -> None:
        self.pending.append(data)

    async def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            await self.response.write(data)


_FILLER = split_tokens(" the model keeps writing words until it reaches its token limit")


def _fill(text: str, tokens: int) -> str:
    """``text`` padded (or cut) to exactly ``tokens`` tokens, for ``ignore_eos`` requests."""
    pieces = split_tokens(text)[:tokens]
    while len(pieces) < tokens:
        pieces.extend(_FILLER[: tokens - len(pieces)])
    return "".join(pieces)


def _duration(seconds: float) -> str:
    """An OpenAI-style duration: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


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
    # handler_cancellation: a client that gives up (a stall, a timeout) cancels its handler
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=1.0)
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
