"""What every native client shares: its owner closes it once, and a closed one refuses calls."""

from __future__ import annotations

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
