"""What every native client shares: its owner closes it once, and a closed one refuses calls."""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import anyio
import anyio.abc
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, OpenAIChatBackend, http
from open_strawberry.backends.http import HTTPBackend
from open_strawberry.errors import (
    BackendClosedError,
    BackendConnectionError,
    BackendTimeoutError,
    ConfigurationError,
    FatalBackendError,
)
from open_strawberry.mock import MockServer

REQUEST = ChatRequest(messages=(ChatMessage(role="user", content="What is 6 * 7?"),), seed=1)


def native_backends(server: MockServer) -> list[HTTPBackend]:
    return [OpenAIChatBackend(base_url=server.openai_base_url, model="m", provider="vllm"),
            AnthropicMessagesBackend(base_url=server.url, model="m")]


async def test_a_closed_backend_refuses_calls_and_sends_nothing(mock_server: MockServer) -> None:
    for backend in native_backends(mock_server):
        async with backend:
            await backend.complete(REQUEST)
        assert backend.closed
        sent = mock_server.requests
        with pytest.raises(BackendClosedError) as info:
            await backend.complete(REQUEST)
        assert mock_server.requests == sent  # no new session was opened behind the owner's back
        assert isinstance(info.value, FatalBackendError) and not info.value.retryable
        assert info.value.provider == backend.provider


async def test_a_backend_closed_before_its_first_call_never_opens(mock_server: MockServer) -> None:
    backend = OpenAIChatBackend(base_url=mock_server.openai_base_url, model="m", provider="vllm")
    assert not backend.closed
    await backend.aclose()
    with pytest.raises(BackendClosedError):
        await backend.complete(REQUEST, stream=False)
    with pytest.raises(BackendClosedError):
        async with backend:
            pass
    assert mock_server.requests == 0


async def test_closing_twice_is_harmless(mock_server: MockServer) -> None:
    for backend in native_backends(mock_server):
        async with backend:
            await backend.complete(REQUEST)
            await backend.aclose()  # closed early; leaving the block closes it again
        await backend.aclose()
        assert backend.closed


OK_STREAM = (b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
             b"data: [DONE]\n\n")
HI = ChatRequest(messages=(ChatMessage(role="user", content="hi"),), max_tokens=8)


async def read_request(stream: anyio.abc.SocketStream, buffered: bytes = b"") -> bytes:
    """Read one whole HTTP request (head and body) from ``stream``; return the bytes after it."""
    while b"\r\n\r\n" not in buffered:
        buffered += await stream.receive()
    head, _, rest = buffered.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += await stream.receive()
    return rest[length:]


@asynccontextmanager
async def backend_against(serve: Callable[[anyio.abc.SocketStream], Awaitable[None]],
                          **options: Any) -> AsyncIterator[OpenAIChatBackend]:
    """An OpenAI client of a server on 127.0.0.1 whose connections ``serve`` handles."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            async with OpenAIChatBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m", **options) as backend:
                yield backend
            tg.cancel_scope.cancel()


class HangingUpServer:
    """Reads each request whole, answers it (or not, with ``answer=False``) without saying
    "connection: close", and resets the connection when the next request on it comes in, as
    llama-server's connections look to a client: kept alive until used, then closed.
    ``together`` holds the answers back until that many requests are in."""

    def __init__(self, *, answer: bool = True, together: int = 1) -> None:
        self.answer = answer
        self.served = 0
        self._together = together
        self._all_in = anyio.Event()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await read_request(stream)
            self.served += 1
            if self.served >= self._together:
                self._all_in.set()
            await self._all_in.wait()
            if self.answer:
                await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                  b"content-length: %d\r\n\r\n%s" % (len(OK_STREAM), OK_STREAM))
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await stream.receive()  # the connection looks alive until the next request on it
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset

    def backend(self, *, max_connections: int, **options: float) -> AbstractAsyncContextManager[OpenAIChatBackend]:
        return backend_against(self.handle, max_connections=max_connections, **options)


async def test_a_kept_alive_connection_the_server_closed_is_replaced_not_failed() -> None:
    """llama.cpp's server closes its end after a streamed reply without saying so: the pool's
    next request on that connection must go out again on a fresh one, not fail."""
    server = HangingUpServer()
    with anyio.fail_after(20):
        async with server.backend(max_connections=1) as backend:
            for _ in range(5):
                assert (await backend.complete(HI)).text == "ok"
    assert server.served == 5


async def test_a_pool_of_stale_connections_is_worked_through_to_a_fresh_one() -> None:
    """Four calls at once leave four closed connections in the pool, as llama-server with four
    slots does: the next call may meet every one of them before a fresh one."""
    server = HangingUpServer(together=4)
    with anyio.fail_after(20):
        async with server.backend(max_connections=4) as backend:
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(backend.complete, HI)
            for _ in range(4):
                assert (await backend.complete(HI)).text == "ok"
    assert server.served == 8


async def test_a_server_that_hangs_up_on_a_fresh_connection_is_not_asked_again_at_once() -> None:
    """A hang-up after the request was read, on a connection opened for it, is an error for the
    limiter's retry (with its backoff), not a stale connection to send around."""
    server = HangingUpServer(answer=False)
    with anyio.fail_after(20):
        async with server.backend(max_connections=4) as backend:
            with pytest.raises(BackendConnectionError) as info:
                await backend.complete(HI)
    assert server.served == 1
    assert isinstance(info.value.__cause__, aiohttp.ClientOSError)  # the kind a stale connection gives


async def test_a_body_broken_off_after_the_last_event_leaves_the_reply_as_the_events_said() -> None:
    """llama-cpp-python ends a stream it cuts short with ``[DONE]`` and then breaks the chunked
    body off: what the client makes of the reply comes from the events, not from the lost end."""
    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await read_request(stream)  # read whole: unread bytes would make the close a reset
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                              b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(OK_STREAM), OK_STREAM))
            # closed here, without the body's last chunk

    async with backend_against(serve) as backend:
        completion = await backend.complete(HI)
    assert (completion.text, completion.finish_reason) == ("ok", "stop")


async def test_a_stream_whose_end_comes_after_its_last_event_keeps_its_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server may send ``[DONE]`` and the end of the chunked body in separate writes: the
    client reads on to the end, so the connection goes back to the pool, not closed. The end
    is sent once every task (the client's too, reading on) waits; the client's wait for it is
    made long, so that a paused process cannot make the test miss it."""
    monkeypatch.setattr(http, "_TRAILER_WAIT_S", 60.0)
    connections = 0
    calls = 0

    async def serve(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections, calls
        connections += 1
        async with stream:
            buffered = b""
            while True:
                buffered = await read_request(stream, buffered)
                calls += 1
                await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                  b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(OK_STREAM), OK_STREAM))
                await anyio.wait_all_tasks_blocked()  # the client has read [DONE] and waits for more
                await stream.send(b"0\r\n\r\n")

    async with backend_against(serve) as backend:
        for _ in range(3):
            assert (await backend.complete(HI)).text == "ok"
    assert (calls, connections) == (3, 1)


async def test_deadlines_must_be_above_zero_and_infinity_means_none() -> None:
    with pytest.raises(ConfigurationError, match="call_timeout_s must be above 0"):
        OpenAIChatBackend(base_url="http://127.0.0.1:1/v1", model="m", call_timeout_s=0)
    with pytest.raises(ConfigurationError, match="timeout_s must be above 0"):
        OpenAIChatBackend(base_url="http://127.0.0.1:1/v1", model="m", timeout_s=float("nan"))
    server = HangingUpServer()
    with anyio.fail_after(20):
        async with server.backend(max_connections=1, call_timeout_s=math.inf, timeout_s=math.inf) as backend:
            assert (await backend.complete(HI)).text == "ok"


async def test_a_body_held_open_after_the_last_event_ends_the_call_and_drops_the_connection() -> None:
    """A server that sends ``[DONE]`` and then neither ends the body nor closes: the reply stands
    as the events said, after the short trailer wait, and the connection is not reused."""
    connections = 0
    release = anyio.Event()

    async def serve(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        async with stream:
            await read_request(stream)
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                              b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(OK_STREAM), OK_STREAM))
            await release.wait()  # held open until the test ends

    async with backend_against(serve) as backend:
        with anyio.fail_after(10):  # a wait without its bound would never end
            for _ in range(2):
                assert (await backend.complete(HI)).text == "ok"
        release.set()
    assert connections == 2


async def test_a_connection_that_is_never_accepted_fails_at_the_connect_timeout() -> None:
    """A listener whose queue is full drops new connections' SYNs: only the connect deadline
    ends the attempt (the read and call deadlines are left unbounded)."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (and then some): none is accepted
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            async with OpenAIChatBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m", connect_timeout_s=0.2,
                                         timeout_s=math.inf, call_timeout_s=math.inf) as backend:
                with anyio.fail_after(10), pytest.raises(BackendTimeoutError) as info:
                    await backend.complete(HI)
        finally:
            for filler in fillers:
                filler.close()
    assert "no connection within connect_timeout_s=0.2 s" in str(info.value)
    assert info.value.retryable
