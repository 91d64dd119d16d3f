"""Heavy-tailed reply lengths: drawn per reply, seeded by the conversation, capped, with the
reasoner's own text (and its final answer) kept last."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend
from open_strawberry.backends.tokens import count_tokens
from open_strawberry.errors import ConfigurationError
from open_strawberry.mock import MockConfig, ReplyLengths, open_mock_server
from open_strawberry.mock.reasoner import lengthen

QUESTION = "How many 'r's are in 'strawberry'?"


@pytest.mark.parametrize("distribution", ["lognormal", "pareto"])
def test_draws_have_the_median_asked_for_and_a_long_capped_tail(distribution: str) -> None:
    lengths = ReplyLengths(distribution=distribution, median_tokens=200, sigma=1.0, alpha=1.5, max_tokens=20_000)
    draws = [lengths.draw(random.Random(seed)) for seed in range(4001)]  # seeded: the same every run
    assert 180 <= statistics.median(draws) <= 220
    assert max(draws) >= 10 * 200  # a heavy tail: some replies are many times the median
    assert min(draws) >= 1 and max(draws) <= 20_000
    capped = ReplyLengths(distribution=distribution, median_tokens=200, max_tokens=300)
    assert max(capped.draw(random.Random(seed)) for seed in range(500)) == 300


def test_a_short_reply_is_padded_before_its_text_and_a_long_one_kept() -> None:
    text = "So the answer is <final_answer>3</final_answer>"
    padded = lengthen(text, 120)
    assert padded.endswith(text) and count_tokens(padded) == 120
    assert lengthen(text, 3) == text


async def test_the_server_draws_each_reply_length_from_the_conversation() -> None:
    config = MockConfig(reply_lengths=ReplyLengths(median_tokens=300, sigma=1.5, max_tokens=3000))
    def ask(seed: int, max_tokens: int = 4000) -> ChatRequest:
        return ChatRequest(messages=(ChatMessage(role="user", content=QUESTION),), max_tokens=max_tokens, seed=seed)

    async with open_mock_server(config) as server, OpenAIChatBackend(base_url=server.openai_base_url,
                                                                     model="m") as backend:
        first = [await backend.complete(ask(seed)) for seed in range(12)]
        again = [await backend.complete(ask(seed)) for seed in range(12)]
        cut = await backend.complete(ask(7, max_tokens=5))
    lengths = [c.usage.output_tokens for c in first]
    assert lengths == [c.usage.output_tokens for c in again]  # the same conversation, the same length
    assert len(set(lengths)) > 6 and max(lengths) > 3 * min(lengths)  # lengths vary, widely
    assert all(re.search(r"among them\. Running count: 0 \+ \d = \d\.$", c.text) for c in first)  # step last
    assert (cut.usage.output_tokens, cut.finish_reason) == (5, "length")  # the request's max_tokens still cuts


async def test_without_reply_lengths_replies_are_the_reasoners_own() -> None:
    request = ChatRequest(messages=(ChatMessage(role="user", content=QUESTION),), seed=3)
    async with open_mock_server(MockConfig()) as server, OpenAIChatBackend(base_url=server.openai_base_url,
                                                                           model="m") as backend:
        completion = await backend.complete(request)
    assert completion.text.startswith('Letters 1-3 of "strawberry"') and completion.usage.output_tokens < 40


@pytest.mark.parametrize(("lengths", "says"), [
    (ReplyLengths(median_tokens=0), "reply_lengths.median_tokens must be at least 1"),
    (ReplyLengths(sigma=float("nan")), "reply_lengths.sigma must be a number above 0"),
    (ReplyLengths(alpha=0), "reply_lengths.alpha must be a number above 0"),
])
def test_reply_lengths_no_server_can_use_are_refused(lengths: ReplyLengths, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        MockConfig(reply_lengths=lengths).check()
