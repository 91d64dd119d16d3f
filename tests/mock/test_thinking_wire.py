"""The official SDKs parse the mock's reasoning mode, and the mock checks the thinking blocks
that come back as Anthropic does."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import RedactedThinkingBlock, SignatureDelta, TextBlock, ThinkingBlock, ThinkingDelta

from open_strawberry.backends.tokens import count_tokens
from open_strawberry.mock import MockConfig, Reasoner, open_mock_server

QUESTION = "How many 'r's are in 'strawberry'?"
THINKING = Reasoner().thinking([("user", QUESTION)])
MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]
FIELDS = {"reasoning": ["reasoning"], "reasoning_content": ["reasoning_content"],
          "both": ["reasoning", "reasoning_content"], "reasoning_details": ["reasoning"]}


@pytest.mark.parametrize("mode", list(FIELDS))
async def test_the_openai_sdk_finds_the_thinking_field_in_model_extra(mode: str) -> None:
    async with open_mock_server(MockConfig(thinking=mode)) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        whole = await client.chat.completions.create(model="m", messages=MESSAGES)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True})
        streamed: dict[str, str] = {}
        content = ""
        async for chunk in stream:
            for choice in chunk.choices:
                for name, value in (choice.delta.model_extra or {}).items():
                    if isinstance(value, str):
                        streamed[name] = streamed.get(name, "") + value
                content += choice.delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
    message = whole.choices[0].message
    extra = message.model_extra or {}
    for field in FIELDS[mode]:
        assert extra[field] == THINKING == streamed[field]
    assert message.content == content and "think" not in content
    assert whole.usage is not None and whole.usage.completion_tokens_details is not None
    assert whole.usage.completion_tokens_details.reasoning_tokens == count_tokens(THINKING)
    assert usage.completion_tokens == count_tokens(THINKING) + count_tokens(content)
    if mode == "reasoning_details":
        (detail,) = extra["reasoning_details"]
        assert detail["type"] == "reasoning.text" and detail["text"] == THINKING and detail["signature"]


@pytest.mark.parametrize(("mode", "opening"), [("think_tags", "<think>\n"), ("think_tags_open", "")])
async def test_inline_thinking_comes_in_the_content(mode: str, opening: str) -> None:
    async with open_mock_server(MockConfig(thinking=mode)) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="x", max_retries=0) as client:
        whole = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert whole.choices[0].message.content is not None
    assert whole.choices[0].message.content.startswith(f"{opening}{THINKING}\n</think>\n\n")


THINK = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("redacted", [False, True])
async def test_the_anthropic_sdk_reads_signed_thinking_blocks(redacted: bool) -> None:
    async with open_mock_server(MockConfig(thinking_redacted=redacted)) as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="x", max_retries=0) as client:
        message = await client.messages.create(model="claude", max_tokens=2048, messages=MESSAGES, thinking=THINK)
        events = [event async for event in await client.messages.create(
            model="claude", max_tokens=2048, messages=MESSAGES, thinking=THINK, stream=True)]
    thinking, *rest = message.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == THINKING and thinking.signature
    assert isinstance(rest[-1], TextBlock)
    assert [type(block) for block in rest[:-1]] == ([RedactedThinkingBlock] if redacted else [])
    deltas = [event.delta for event in events if event.type == "content_block_delta"]
    assert "".join(d.thinking for d in deltas if isinstance(d, ThinkingDelta)) == THINKING
    signatures = [d.signature for d in deltas if isinstance(d, SignatureDelta)]
    assert signatures == [thinking.signature]
    starts = [event.content_block.type for event in events if event.type == "content_block_start"]
    assert starts == ["thinking", *(["redacted_thinking"] if redacted else []), "text"]


async def _second_turn(client: anthropic.AsyncAnthropic, assistant_content: list[Any]) -> Any:
    return await client.messages.create(model="claude", max_tokens=2048, thinking=THINK, messages=[
        *MESSAGES, {"role": "assistant", "content": assistant_content}, {"role": "user", "content": "Go on."}])


async def test_the_mock_refuses_an_altered_or_missing_thinking_block_as_anthropic_does() -> None:
    async with open_mock_server(MockConfig(thinking_redacted=True)) as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="x", max_retries=0) as client:
        first = await client.messages.create(model="claude", max_tokens=2048, messages=MESSAGES, thinking=THINK)
        blocks = [block.model_dump() for block in first.content]
        assert (await _second_turn(client, blocks)).content  # unmodified: accepted
        altered = [{**blocks[0], "thinking": blocks[0]["thinking"] + " (edited)"}, *blocks[1:]]
        forged = [blocks[0], {**blocks[1], "data": "x" + blocks[1]["data"]}, blocks[2]]
        for content, problem in ((altered, "Invalid `signature`"), (forged, "Invalid `data`"),
                                 ([blocks[2]], "must be passed back unmodified")):
            with pytest.raises(anthropic.BadRequestError) as info:
                await _second_turn(client, content)
            assert info.value.status_code == 400 and problem in info.value.message
            assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize(("options", "problem"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, ">= 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "less than max_tokens"),
    ({"thinking": THINK, "temperature": 0.7}, "temperature may only be set to 1")])
async def test_the_mock_refuses_thinking_options_anthropic_refuses(options: dict[str, Any], problem: str) -> None:
    async with open_mock_server() as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="x", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="claude", max_tokens=2048, messages=MESSAGES, extra_body=options)
    assert problem in info.value.message
