"""Asking a local server its capacity: llama.cpp's /props and /slots, llama-cpp-python's
one-at-a-time server, servers that say nothing; and folding the system prompt for models
without a system role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from open_strawberry.backends.base import ChatRequest
from open_strawberry.backends.capacity import ServerCapacity, probe_capacity
from open_strawberry.backends.models import parse_model
from open_strawberry.backends.openai_chat import openai_body
from open_strawberry.messages import ChatMessage
from tests.helpers import serve_app


@asynccontextmanager
async def serving(routes: dict[str, Any]) -> AsyncIterator[str]:
    """A server answering GET ``path`` with the JSON ``routes[path]`` (404 for the rest)."""
    app = web.Application()

    def answer(payload: Any) -> Any:
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response(payload)
        return handler

    for path, payload in routes.items():
        app.router.add_get(path, answer(payload))
    async with serve_app(app) as url:
        yield url


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ({"/props": {"total_slots": 4, "chat_template_caps": {"supports_system_role": False}}},
         ServerCapacity(4, "llama.cpp", "/props total_slots", system_role=False)),
        ({"/props": {"no": "slots"}, "/slots": [{"id": 0}, {"id": 1}]}, ServerCapacity(2, "llama.cpp", "/slots")),
        ({"/v1/models": {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]}},
         ServerCapacity(1, "llama-cpp-python", "serves one request at a time")),
        ({"/v1/models": {"object": "list", "data": [{"id": "q", "owned_by": "vllm"}]}},
         ServerCapacity(None, "vLLM", "no slot count; adaptive concurrency")),
        ({}, ServerCapacity(None, "llamacpp", "no slot count; adaptive concurrency")),
    ],
)
async def test_the_probe_reads_what_each_server_says(routes: dict[str, Any], expected: ServerCapacity) -> None:
    async with serving(routes) as url:
        assert await probe_capacity(parse_model(f"llamacpp:m@{url}/v1")) == expected


async def test_hosted_apis_are_not_probed() -> None:
    assert await probe_capacity(parse_model("openai:gpt-4o-mini")) is None
    assert await probe_capacity(parse_model("anthropic:claude-3-5-haiku-latest")) is None


async def test_a_server_that_is_not_there_is_unknown_not_an_error() -> None:
    found = await probe_capacity(parse_model("llamacpp:m@http://127.0.0.1:9/v1"), timeout_s=2)
    assert found is not None and found.slots is None


def test_without_a_system_role_the_system_prompt_joins_the_first_user_message() -> None:
    request = ChatRequest(system="Be brief.", messages=(ChatMessage(role="user", content="2+3?"),
                                                        ChatMessage(role="assistant", content="5"),
                                                        ChatMessage(role="user", content="Sure?")))
    folded = openai_body(request, "m", "llamacpp", stream=False, system_role=False)["messages"]
    assert folded == [{"role": "user", "content": "Be brief.\n\n2+3?"}, {"role": "assistant", "content": "5"},
                      {"role": "user", "content": "Sure?"}]
    kept = openai_body(request, "m", "llamacpp", stream=False)["messages"]
    assert kept[0] == {"role": "system", "content": "Be brief."} and len(kept) == 4
