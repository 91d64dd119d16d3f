"""The mock's Anthropic side is seeded per call, as its OpenAI side: the seed travels in
metadata.user_id, sent by mock-anthropic: clients only."""

from __future__ import annotations

import json
from pathlib import Path

from open_strawberry.backends.anthropic_messages import AnthropicMessagesBackend
from open_strawberry.backends.base import ChatRequest
from open_strawberry.messages import ChatMessage
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.traces.stats import trace_stats


def body_sent(provider: str) -> dict[str, object]:
    backend = AnthropicMessagesBackend(base_url="http://127.0.0.1:1", model="m", api_key=None, provider=provider)
    request = ChatRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=16, seed=42)
    return dict(json.loads(backend.encode_request(request, stream=False)))


async def test_only_a_mock_anthropic_client_sends_the_seed() -> None:
    assert body_sent("mock-anthropic")["metadata"] == {"user_id": "open-strawberry-seed-42"}
    assert "metadata" not in body_sent("anthropic")


async def test_mock_anthropic_samples_of_one_problem_differ(tmp_path: Path) -> None:
    """pass@4 above pass@1 on mixed:40 x 4: the samples are not copies of one another."""
    async with open_mock_server(MockConfig(accuracy=0.6)) as server:
        summary = await generate(problems="builtin:mixed:40", model=f"mock-anthropic:reasoner@{server.url}",
                                 out=str(tmp_path / "t.jsonl"), samples=4, max_traces=64)
    stats = trace_stats(summary.out, ks=[1, 4])
    assert stats.pass_at[4] > stats.pass_at[1]
