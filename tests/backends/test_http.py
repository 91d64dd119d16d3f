"""What every native client shares: its owner closes it once, and a closed one refuses calls."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.abc
import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import AnthropicMessagesBackend, ChatRequest, OpenAIChatBackend
from open_strawberry.backends.http import HTTPBackend
from open_strawberry.errors import BackendClosedError, FatalBackendError
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


async def test_a_kept_alive_connection_the_server_closed_is_replaced_not_failed() -> None:
    """llama.cpp's server closes its end after a streamed reply without saying so: the pool's
    next request on that connection must go out again on a fresh one, not fail."""
    from open_strawberry.backends import ChatRequest, OpenAIChatBackend
    from open_strawberry.messages import ChatMessage

    body = (b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
            b"data: [DONE]\n\n")
    served = 0

    async def answer_once_then_hang_up(stream: anyio.abc.SocketStream) -> None:
        nonlocal served
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            head, _, rest = request.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += await stream.receive()
            served += 1
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                              b"content-length: %d\r\n\r\n%s" % (len(body), body))
            # no "connection: close": the client believes it may reuse this connection; the
            # close is abrupt (a reset, as llama-server's), so the next write on it fails
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    request = ChatRequest(messages=(ChatMessage(role="user", content="hi"),), max_tokens=8)
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, answer_once_then_hang_up)
            async with OpenAIChatBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m",
                                         max_connections=1) as backend:
                for _ in range(5):
                    assert (await backend.complete(request)).text == "ok"
            tg.cancel_scope.cancel()
    assert served == 5
