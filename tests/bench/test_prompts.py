"""``bench`` prompts: unique across requests and runs unless a shared prefix is asked for, and
sized with the server's tokenizer where it has one (llama.cpp's /apply-template and /tokenize,
vLLM's /tokenize), else estimated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from open_strawberry.backends.models import parse_model
from open_strawberry.bench.calibrate import PromptSize, size_prompt
from open_strawberry.bench.runner import BenchPlan, _Run
from tests.helpers import serve_app


def text(run: _Run, index: int) -> str:
    request = run.prompt(index)
    return f"{request.system}|{request.messages[0].content}"


def test_no_two_prompts_share_more_than_an_asked_prefix() -> None:
    plan = BenchPlan(concurrency=1, requests=4, input_tokens=40)
    first, again = _Run(plan, backend=None), _Run(plan, backend=None)  # type: ignore[arg-type]
    prompts = [text(run, index) for run in (first, again) for index in range(4)]
    assert len(set(prompts)) == 8
    assert len({p[:8] for p in prompts}) == 2  # the run's nonce comes first: runs differ from the first token
    with_prefix = BenchPlan(concurrency=1, requests=4, input_tokens=40, prefix_tokens=20)
    prefixed = [text(_Run(with_prefix, backend=None), index)  # type: ignore[arg-type]
                for _ in range(2) for index in range(2)]
    assert len({tuple(p.split(" ")[:20]) for p in prefixed}) == 1  # 20 shared words (estimated: a token each)
    assert len(set(prefixed)) == 4


@asynccontextmanager
async def tokenizing(routes: dict[str, Callable[[dict[str, Any]], Any]]) -> AsyncIterator[str]:
    """A server answering POST ``path`` with ``routes[path](body)`` as JSON."""
    app = web.Application()
    for path, answer in routes.items():
        async def handler(request: web.Request, answer: Callable[[dict[str, Any]], Any] = answer) -> web.Response:
            return web.json_response(answer(await request.json()))
        app.router.add_post(path, handler)
    async with serve_app(app) as url:
        yield url


def words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


async def test_llama_cpp_sizes_the_prompt_with_its_tokenizer() -> None:
    # a template of 20 tokens around the messages, two tokens a word
    routes = {"/apply-template": lambda body: {"prompt": " ".join(m["content"] for m in body["messages"])},
              "/tokenize": lambda body: {"tokens": [0] * (20 + 2 * len(body["content"].split()))}}
    async with tokenizing(routes) as url:
        size = await size_prompt(parse_model(f"llamacpp:m@{url}/v1"), input_tokens=100, prefix_tokens=30)
    # the probe's system prompt is one word: 22 tokens of overhead; (100 - 22) / 2 = 39 words, 15 of them shared
    assert size == PromptSize(prefix_words=15, words=24, source="the server's tokenizer (/tokenize)")


async def test_vllm_sizes_the_prompt_and_a_server_without_a_tokenizer_is_estimated() -> None:
    routes = {"/tokenize": lambda body: {"count": 10 + words(body["messages"])}}
    async with tokenizing(routes) as url:
        size = await size_prompt(parse_model(f"vllm:m@{url}/v1"), input_tokens=64)
    assert (size.words, size.source) == (53, "the server's tokenizer (/tokenize)")
    async with tokenizing({}) as url:
        estimated = await size_prompt(parse_model(f"vllm:m@{url}/v1"), input_tokens=64)
    assert estimated.words == 54 and estimated.source.startswith("estimate")
