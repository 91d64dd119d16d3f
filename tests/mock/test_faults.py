"""Fault kinds: each rate names a behaviour, and a new reply fault plugs into the chunk loop."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from open_strawberry.mock import FaultRates, MockConfig, open_mock_server
from open_strawberry.mock.faults import FAULTS, Target

CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "How many r's are in strawberry?"}]}
MESSAGES = {**CHAT, "max_tokens": 100}


def test_every_fault_rate_names_a_behaviour() -> None:
    assert list(FAULTS) == list(FaultRates.__struct_fields__)


class _EndAfterOpening:
    """A reply fault as a new kind would be written: the stream ends before its first piece."""

    at = 0

    async def strike(self, target: Target) -> bool:
        await target.response.write_eof()
        return True

    async def whole(self, request: web.Request, body: bytes, stall_s: float) -> web.StreamResponse | None:
        return None


async def test_a_reply_fault_at_chunk_zero_leaves_only_the_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAULTS, "stall", _EndAfterOpening())
    async with open_mock_server(MockConfig(faults=FaultRates(stall=1.0))) as server, aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/v1/chat/completions", json=CHAT) as response:
            chat = await response.read()
        async with session.post(f"{server.url}/v1/messages", json=MESSAGES) as response:
            messages = await response.read()
        async with session.post(f"{server.url}/v1/messages", json={**MESSAGES, "stream": False}) as response:
            whole = await response.json()
    assert chat.count(b"data: ") == 1
    assert b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null' in chat
    assert b"[DONE]" not in chat
    events = [line.removeprefix(b"event: ") for line in messages.splitlines() if line.startswith(b"event: ")]
    assert events == [b"message_start", b"content_block_start", b"ping"]
    assert whole["stop_reason"] == "end_turn"  # ``whole`` let the non-streamed reply through
    assert server.faults["stall"] == 3
