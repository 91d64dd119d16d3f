"""A server that misbehaves on purpose, to test the clients' defences.

:mod:`tests.canned` replays fixed bytes; this one reacts to the request, which some failures
need: it echoes the key it was sent, paces an endless stream until the test ends, and sends a
flood shaped for a streamed or a non-streamed request. It speaks both wire formats: a path
ending in ``/messages`` gets Anthropic's shapes, any other OpenAI's.

Modes:

* ``html``: status 200 and a proxy's sign-in page (``text/html``), whatever was asked.
* ``slow``: an event stream that starts (a role chunk, or ``message_start``) and then sends a
  keep-alive comment one byte every ``pace_s`` seconds, forever: until the client hangs up
  or the server is closed.
* ``huge``: ``huge_bytes`` of reply whatever ``max_tokens`` says: one endless event of
  reasoning for a streamed request, one JSON body for a non-streamed one (sent in pieces,
  with a ``content-length`` only when ``declare_length``).
* ``echo-key``: 401, with the ``authorization`` (OpenAI) or ``x-api-key`` (Anthropic) header
  value inside the error message, as OpenAI's "Incorrect API key provided: ..." does.
* ``redirect``: 307 to ``target`` plus the path asked for (another server: a client that
  follows it carries its key there).
* ``echo-reply``: a successful reply whose text and reasoning are the key header's value,
  streamed one character per chunk (or whole, when not streamed).
* ``throttled``: a successful OpenAI reply (streamed or not) that never ends the trace, with
  headers that say the token budget of ``server.token_limit`` a minute is spent and resets in three
  years: ``x-ratelimit-remaining-tokens: 0``, ``x-ratelimit-reset-tokens: 99999999s``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
import msgspec
from aiohttp import web

Misbehaviour = Literal["html", "slow", "huge", "echo-key", "redirect", "echo-reply", "throttled"]

HTML_PAGE = (b"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Sign in - Example Corp "
             b"proxy</title></head>\n<body><h1>Please sign in to continue</h1><form method=\"post\" "
             b"action=\"/login\"><input name=\"user\"><input name=\"password\" type=\"password\"></form></body>\n"
             b"</html>\n")
_KEEP_ALIVE = b": keep-alive\n"
_PIECE = 64 * 1024


@dataclass
class MisbehavingServer:
    url: str  # the Anthropic base URL; OpenAI's is openai_base_url
    requests: int = 0
    token_limit: int = 60  # throttled: the budget the headers state, read at each request (a test may change it)

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"


@asynccontextmanager
async def open_misbehaving_server(mode: Misbehaviour, *, pace_s: float = 1.0, huge_bytes: int = 10 * 2**20,
                                  declare_length: bool = False, target: str = "") -> AsyncIterator[MisbehavingServer]:
    """Serve ``mode`` on a free loopback port until the block ends; leaving it releases
    every reply still being sent, so no handler outlives the server."""
    release = anyio.Event()
    server = MisbehavingServer(url="")

    async def handler(request: web.Request) -> web.StreamResponse:
        server.requests += 1
        body = msgspec.json.decode(await request.read() or b"{}")
        anthropic = request.path.endswith("/messages")
        if mode == "echo-key":
            return _echo_key(request, anthropic)
        if mode == "redirect":
            return web.Response(status=307, headers={"location": target + request.path_qs})
        if mode == "echo-reply":
            return await _echo_reply(request, anthropic, bool(body.get("stream")))
        if mode == "throttled":
            return await _throttled(request, bool(body.get("stream")), server.token_limit)
        if mode == "html":
            return web.Response(body=HTML_PAGE, content_type="text/html", charset="utf-8")
        streamed = bool(body.get("stream"))
        headers = {"content-type": "text/event-stream" if streamed or mode == "slow" else "application/json"}
        head, tail = (_huge_event(anthropic) if streamed else _huge_body(anthropic)) if mode == "huge" else (b"", b"")
        if mode == "huge" and declare_length:
            headers["content-length"] = str(len(head) + huge_bytes + len(tail))
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        try:
            if mode == "slow":
                await response.write(_started(anthropic))
                while not release.is_set():
                    for byte in _KEEP_ALIVE:
                        await response.write(bytes([byte]))
                        with anyio.move_on_after(pace_s):
                            await release.wait()
            else:
                await response.write(head)
                sent = 0
                while sent < huge_bytes and not release.is_set():
                    piece = min(_PIECE, huge_bytes - sent)
                    await response.write(b"x" * piece)
                    sent += piece
                await response.write(tail)
            await response.write_eof()
        except ConnectionError:  # the client hung up, as it should on a reply like these
            pass
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        server.url = f"http://{host}:{port}"
        yield server
    finally:
        release.set()
        await runner.cleanup()


def _echo_key(request: web.Request, anthropic: bool) -> web.Response:
    if anthropic:
        key = request.headers.get("x-api-key", "")
        error = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key: {key}"}}
    else:
        key = request.headers.get("authorization", "")
        error = {"error": {"message": f"Incorrect API key provided: {key}. You can find your API key at "
                                      "https://platform.openai.com/account/api-keys.",
                           "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    return web.Response(status=401, body=msgspec.json.encode(error), content_type="application/json")


def _started(anthropic: bool) -> bytes:
    if anthropic:
        start = {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 5, "output_tokens": 0}}}
        return b"event: message_start\ndata: " + msgspec.json.encode(start) + b"\n\n"
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    return b"data: " + msgspec.json.encode(role) + b"\n\n"


def _huge_event(anthropic: bool) -> tuple[bytes, bytes]:
    """One event of endless reasoning (a field the text cap does not count), then a proper end."""
    if anthropic:
        return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"thinking_delta","thinking":"',
                b'"}}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                b'"usage":{"output_tokens":1}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    return (b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"',
            b'"},"finish_reason":null}]}\n\ndata: {"choices":[{"index":0,"delta":{"content":"42"},'
            b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def _huge_body(anthropic: bool) -> tuple[bytes, bytes]:
    """A non-streamed reply whose text is the flood."""
    if anthropic:
        return (b'{"type":"message","model":"m","content":[{"type":"text","text":"',
                b'"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":1}}')
    return (b'{"choices":[{"index":0,"message":{"role":"assistant","content":"',
            b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}')


async def _echo_reply(request: web.Request, anthropic: bool, streamed: bool) -> web.StreamResponse:
    """A well-formed reply whose text and reasoning are the request's key header, verbatim."""
    key = request.headers.get("x-api-key" if anthropic else "authorization", "")
    if not streamed:
        if anthropic:
            body = {"type": "message", "model": "m", "stop_reason": "end_turn",
                    "content": [{"type": "thinking", "thinking": key, "signature": "sig"},
                                {"type": "text", "text": key}], "usage": {"input_tokens": 5, "output_tokens": 1}}
        else:
            body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": key, "reasoning_content": key}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if anthropic:
        await response.write(_started(True))
        for index, kind in enumerate(("thinking", "text")):
            start = {"type": "content_block_start", "index": index, "content_block": {"type": kind, kind: ""}}
            await response.write(_event("content_block_start", start))
            for char in key:
                delta = {"type": "content_block_delta", "index": index,
                         "delta": {"type": f"{kind}_delta", kind: char}}
                await response.write(_event("content_block_delta", delta))
            if kind == "thinking":
                signature = {"type": "content_block_delta", "index": index,
                             "delta": {"type": "signature_delta", "signature": "sig"}}
                await response.write(_event("content_block_delta", signature))
            await response.write(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}
        await response.write(_event("message_delta", end) + _event("message_stop", {"type": "message_stop"}))
    else:
        for field in ("reasoning_content", "content"):
            for char in key:
                chunk = {"choices": [{"index": 0, "delta": {field: char}, "finish_reason": None}]}
                await response.write(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
        last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + msgspec.json.encode(last) + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    return response


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n"


async def _throttled(request: web.Request, streamed: bool, token_limit: int) -> web.StreamResponse:
    """A reply that asks for the next turn, and says no tokens are left until three years from now."""
    headers = {"x-ratelimit-limit-tokens": str(token_limit), "x-ratelimit-remaining-tokens": "0",
               "x-ratelimit-reset-tokens": "99999999s"}
    text, usage = "Let me think about it some more.", {"prompt_tokens": 5, "completion_tokens": 8}
    if not streamed:
        body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": usage}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json", headers=headers)
    response = web.StreamResponse(headers={"content-type": "text/event-stream", **headers})
    await response.prepare(request)
    chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}]
    for chunk in chunks:
        await response.write(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
