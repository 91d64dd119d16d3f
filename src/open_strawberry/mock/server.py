"""A mock LLM server, wire-compatible with OpenAI chat completions and Anthropic messages.

Serves ``POST /v1/chat/completions``, ``POST /v1/messages`` and ``GET /v1/models``
(and ``GET /mock/stats``: requests served, 429s sent, faults injected, batch requests
submitted), streamed
(Server-Sent Events) and not, with the scripted :class:`~open_strawberry.mock.reasoner.Reasoner`
writing the replies. The :class:`~open_strawberry.mock.latency.Latency` model paces the
stream: the first token after ``ttft_s``, then ``tokens_per_chunk`` tokens per chunk at
``tokens_per_s``, each delay varied by up to ``jitter`` (a fraction), seeded. Usage counts are
exact counts of :mod:`open_strawberry.backends.tokens` tokens; Anthropic prompt caching is
simulated from the ``cache_control`` breakpoints of each request, with a time-to-live.

Per-minute budgets (``rpm``, ``tpm``, ``input_tpm``, ``output_tpm``) are enforced with the
providers' 429 bodies and rate-limit headers (sent on every response), and ``faults``
injects failures at seeded rates (:mod:`open_strawberry.mock.faults`): 500, 503, 529, 429
with and without ``retry-after``, a connection dropped mid-stream, a truncated stream, a
malformed chunk, a stall.

Each API is one :class:`~open_strawberry.mock.wire.Wire` object
(:mod:`~open_strawberry.mock.openai_wire`, :mod:`~open_strawberry.mock.anthropic_wire`):
this module admits a request, writes the reply and runs the one chunk loop of every stream,
asking the wire to frame each piece. ``flavor`` mimics other OpenAI-compatible servers,
``keepalive_every`` interleaves ``: keep-alive`` comment lines, and ``error_after_chunks``
ends the stream with an error event.

Both batch APIs (OpenAI's files and batches, Anthropic's message batches) are served by
:class:`~open_strawberry.mock.batches.MockBatches`, each line answered by :meth:`MockServer.answer_whole`.

Start it in-process with :func:`open_mock_server` (tests, the demo) or as
``open-strawberry mock-server`` (benchmarks, other programs). It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

import anyio
import anyio.abc
import msgspec
from aiohttp import web

from open_strawberry.backends.tokens import count_tokens, split_tokens
from open_strawberry.limiter.buckets import TokenBucket
from open_strawberry.mock.anthropic_wire import AnthropicWire
from open_strawberry.mock.batches import MockBatches
from open_strawberry.mock.config import MockConfig
from open_strawberry.mock.faults import FAULTS, FaultRates, ReplyFault, StatusFault, Target
from open_strawberry.mock.latency import Latency
from open_strawberry.mock.openai_wire import OpenAIWire
from open_strawberry.mock.reasoner import Reasoner, length_seed, lengthen
from open_strawberry.mock.wire import Call, Frames, RateWindow, Reply, Wire, json_response
from open_strawberry.runtime.sites import bind_listener, open_site

__all__ = ["FaultRates", "MockConfig", "MockServer", "open_mock_server", "serve_mock"]

Body = TypeVar("Body")


class MockServer:
    """The mock's state: its config, reasoner, latency model, one wire object per API (the
    Anthropic one holds the prompt cache), budgets and request counters."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.reasoner = Reasoner(accuracy=self.config.accuracy, confident_after=self.config.confident_after,
                                 seed=self.config.seed)
        self.url = ""
        self.requests = 0
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()  # {fault name: times injected}
        self.latency = Latency(self.config)
        self.openai = OpenAIWire(self.config.flavor, self.config.thinking, self.config.seed)
        self.anthropic = AnthropicWire(self.config.cache_ttl_s, seed=self.config.seed,
                                       redacted=self.config.thinking_redacted)
        self._ids = itertools.count(1)
        self.batches = MockBatches(self, self.config.batch, seed=self.config.seed)
        self._fault_rng = random.Random(f"{self.config.seed}:faults")
        self._faulty = any(getattr(self.config.faults, name) for name in FaultRates.__struct_fields__)
        now = time.monotonic()
        budgets = {"requests": self.config.rpm, "tokens": self.config.tpm,
                   "input_tokens": self.config.input_tpm, "output_tokens": self.config.output_tpm}
        self._buckets = {name: TokenBucket(limit, now=now) for name, limit in budgets.items() if limit}

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/mock/stats", self._stats)
        self.batches.add_routes(app.router)
        return app

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(self.openai, request)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(self.anthropic, request)

    async def _models(self, request: web.Request) -> web.Response:
        wire = self.anthropic if "anthropic-version" in request.headers else self.openai
        return json_response(wire.models(self.config.model))

    async def _stats(self, request: web.Request) -> web.Response:
        """What the mock has served: for tests and benchmarks in other processes."""
        return json_response({"requests": self.requests, "rate_limited": self.rate_limited,
                              "faults": dict(self.faults), "batch_requests": self.batches.statistics()})

    # ---------------------------------------------------------------- one request

    async def _serve(self, wire: Wire[Body], request: web.Request) -> web.StreamResponse:
        """Admit the request (count it, check its key, decode its body, draw its fault, charge
        the budgets), then reply: whole, or streamed by :meth:`_stream`."""
        self.requests += 1
        key = self.config.api_key
        if key is not None and not wire.authorized(request.headers, key):
            return wire.unauthorized()
        try:
            call = wire.decode(await request.read())
        except msgspec.DecodeError as exc:
            return wire.bad_request(str(exc))
        fault = self._draw_fault()
        if isinstance(fault, StatusFault):
            return self._fault_response(wire, fault)
        reply = self._reply(wire, call)
        fresh = reply.prompt.uncached + reply.prompt.cache_write  # cache reads are free, as with Anthropic's
        costs = {"requests": 1, "tokens": fresh + reply.output_tokens, "input_tokens": fresh,
                 "output_tokens": reply.output_tokens}
        if (short := self._charge(costs)) is not None:
            return self._rate_limited_response(wire, short, costs[short])
        reply = dataclasses.replace(reply, number=next(self._ids))
        headers = {wire.request_id_header: f"req_mock{self.requests}", **wire.rate_headers(self._windows())}
        if not call.stream:
            body = wire.body(call, reply)
            if fault is not None and (instead := await fault.whole(request, body, self.config.stall_s)) is not None:
                return instead
            return web.Response(body=body, content_type="application/json", headers=headers)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                                               **headers})
        await response.prepare(request)
        await self._stream(wire.frames(call, reply), reply, request, response, fault)
        return response

    def _reply(self, wire: Wire[Body], call: Call[Body]) -> Reply:
        """What the reasoner answers to ``call`` (numbered 0: the caller numbers what it sends)."""
        text, finish = self._answer(call)
        thinking = self.reasoner.thinking(call.turns) if call.think else ""
        thinking_tokens = count_tokens(thinking)
        return Reply(number=0, text=text, finish=finish, prompt=wire.prompt_tokens(call),
                     output_tokens=count_tokens(text) + thinking_tokens, thinking=thinking,
                     thinking_tokens=thinking_tokens)

    def answer_whole(self, wire: Wire[Body], raw: bytes) -> tuple[int, bytes]:
        """One request body answered as the synchronous route answers it unstreamed, as
        ``(status, body)``: for the lines of a batch (no budgets, no faults: a batch has its own)."""
        try:
            call = wire.decode(raw)
        except msgspec.DecodeError as exc:
            response = wire.bad_request(str(exc))
            return response.status, bytes(response.body) if isinstance(response.body, bytes) else b""
        self.requests += 1
        reply = dataclasses.replace(self._reply(wire, call), number=next(self._ids))
        return 200, wire.body(call, reply)

    def _answer(self, call: Call[Body]) -> tuple[str, Literal["stop", "length"]]:
        """The reply's text and finish reason, after stop sequences and the max_tokens cut."""
        text = self.reasoner.reply(call.system, call.turns, call.seed)
        if (lengths := self.config.reply_lengths) is not None:
            drawn = lengths.draw(random.Random(length_seed(self.config.seed, call.seed, call.turns)))
            text = lengthen(text, drawn)
        finish: Literal["stop", "length"] = "stop"
        for stop in call.stops:
            if stop and stop in text:
                text = text[: text.index(stop)]
        if call.max_tokens is not None:
            tokens = split_tokens(text)
            if len(tokens) > call.max_tokens:
                text, finish = "".join(tokens[: call.max_tokens]), "length"
        if call.fill and call.max_tokens:
            text, finish = _fill(text, call.max_tokens), "length"
        return text, finish

    async def _stream(self, frames: Frames, reply: Reply, request: web.Request, response: web.StreamResponse,
                      fault: ReplyFault | None) -> None:
        """The chunk loop of every stream: the wire frames, this paces and injects faults. The
        reply's thinking comes first, chunked and paced as its text."""
        config = self.config
        out = _Writer(response)
        out.add(frames.opening())
        thoughts = self.latency.chunks(reply.thinking)
        framed = [*((frames.thought, piece) for piece in thoughts),
                  *((frames.piece, piece) for piece in self.latency.chunks(reply.text))]
        for index, (frame, piece) in enumerate(framed):
            if fault is not None and index == fault.at:
                await out.flush()
                if await fault.strike(Target(request, response, frames, config.stall_s)):
                    return
            if config.error_after_chunks is not None and index >= config.error_after_chunks:
                out.add(frames.error())
                break
            if config.keepalive_every and index and index % config.keepalive_every == 0:
                out.add(frames.keepalive())
            if self.latency.paced(index):
                await out.flush()
                await self.latency.pace(index, piece)
            out.add(frame(piece))
        else:
            out.add(frames.closing())
        await out.flush()
        await response.write_eof()

    # ---------------------------------------------------------------- faults and budgets

    def _draw_fault(self) -> StatusFault | ReplyFault | None:
        if not self._faulty:
            return None
        name = self.config.faults.pick(self._fault_rng.random())
        if name is None:
            return None
        self.faults[name] += 1
        return FAULTS[name]

    def _fault_response(self, wire: Wire[Body], fault: StatusFault) -> web.Response:
        response = wire.error(fault.status, fault.kind, fault.message)
        if fault.hinted:
            wait = self.config.fault_retry_after_s
            response.headers.update({"retry-after": f"{wait:g}", "retry-after-ms": f"{wait * 1000:.0f}"})
        return response

    def _charge(self, costs: dict[str, int]) -> str | None:
        """Take ``costs`` from the budgets; the name of the first that cannot pay, else None."""
        if not self._buckets:
            return None
        now = time.monotonic()
        for bucket in self._buckets.values():
            bucket.refill(now)
        for name, bucket in self._buckets.items():
            if bucket.level < costs.get(name, 0):
                self.rate_limited += 1
                return name
        for name, bucket in self._buckets.items():
            bucket.take(costs.get(name, 0))
        return None

    def _windows(self) -> Sequence[RateWindow]:
        """Each budget as of now, for the rate-limit headers."""
        now = time.monotonic()
        windows = []
        for name, bucket in self._buckets.items():
            bucket.refill(now)
            full_in = (bucket.capacity - bucket.level) / bucket.rate if bucket.rate else 0.0
            windows.append(RateWindow(name, int(bucket.capacity), max(0, int(bucket.level)), full_in))
        return windows

    def _rate_limited_response(self, wire: Wire[Body], budget: str, cost: int) -> web.Response:
        bucket = self._buckets[budget]
        wait = max(0.001, bucket.time_to_fit(cost))
        response = wire.rate_limited(budget, int(bucket.capacity), cost, wait)
        response.headers.update({**wire.rate_headers(self._windows()), "retry-after": str(max(1, round(wait))),
                                 "retry-after-ms": f"{wait * 1000:.0f}"})
        return response


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


@asynccontextmanager
async def open_mock_server(config: MockConfig | None = None, *, host: str = "127.0.0.1",
                           port: int = 0) -> AsyncIterator[MockServer]:
    """Serve the mock in this event loop; yields once it accepts connections (``port=0``:
    any free port, see ``server.url``). Stops and closes every connection on exit."""
    server = MockServer(config)
    listener = await bind_listener(host, port)
    with listener.sock:
        async with open_site(server.app(), listener, shutdown_timeout=1.0):
            server.url = listener.url
            yield server


async def serve_mock(config: MockConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                     task_status: anyio.abc.TaskStatus[MockServer] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports the running server through ``task_status`` (for
    ``task_group.start``)."""
    async with open_mock_server(config, host=host, port=port) as server:
        task_status.started(server)
        await anyio.sleep_forever()
