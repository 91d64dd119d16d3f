"""The wire objects: prompts counted by the tokens module, errors and headers per API."""

from __future__ import annotations

import msgspec
from aiohttp import web

from open_strawberry import ChatMessage
from open_strawberry.backends.tokens import count_tokens, estimate_prompt_tokens
from open_strawberry.mock.anthropic_wire import AnthropicWire
from open_strawberry.mock.openai_wire import OpenAIWire
from open_strawberry.mock.wire import PromptTokens, RateWindow


def _json(response: web.Response) -> object:
    assert isinstance(response.body, bytes)
    return msgspec.json.decode(response.body)


def test_an_openai_prompt_is_counted_like_the_clients_estimate() -> None:
    wire = OpenAIWire()
    call = wire.decode(msgspec.json.encode({"model": "m", "messages": [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": [{"type": "text", "text": "How many r's"}, {"type": "text", "text": "?"}]}]}))
    expected = estimate_prompt_tokens([ChatMessage(role="system", content="Be careful."),
                                       ChatMessage(role="user", content="How many r's?")])
    assert wire.prompt_tokens(call) == PromptTokens(expected)
    assert (call.system, call.turns) == ("Be careful.", [("user", "How many r's?")])


def test_an_anthropic_prompt_counts_the_system_without_a_turns_share_and_caches_to_its_breakpoint() -> None:
    wire = AnthropicWire(cache_ttl_s=60.0)
    body = {"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "Long rules. " * 10, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "How many r's?"}]}
    call = wire.decode(msgspec.json.encode(body))
    system = count_tokens("Long rules. " * 10)
    turns = estimate_prompt_tokens([ChatMessage(role="user", content="How many r's?")])
    assert wire.prompt_tokens(call) == PromptTokens(turns, cache_write=system)
    assert wire.prompt_tokens(call) == PromptTokens(turns, cache_read=system)


def test_each_wire_sends_only_its_own_rate_limit_headers() -> None:
    windows = [RateWindow("requests", 10, 9, 6.0), RateWindow("output_tokens", 50, 40, 12.0)]
    assert OpenAIWire().rate_headers(windows) == {"x-ratelimit-limit-requests": "10",
                                                  "x-ratelimit-remaining-requests": "9",
                                                  "x-ratelimit-reset-requests": "6s"}
    anthropic = AnthropicWire(cache_ttl_s=0.0).rate_headers(windows)
    assert sorted(anthropic) == [f"anthropic-ratelimit-{name}-{field}" for name in ("output-tokens", "requests")
                                 for field in ("limit", "remaining", "reset")]
    assert anthropic["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_each_wire_writes_its_providers_error_body() -> None:
    openai = _json(OpenAIWire().error(429, "rate_limit_error", "Slow down."))
    anthropic = _json(AnthropicWire(0.0).error(529, "overloaded_error", "Overloaded"))
    assert openai == {"error": {"message": "Slow down.", "type": "requests", "param": None,
                                "code": "rate_limit_exceeded"}}
    assert anthropic == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
