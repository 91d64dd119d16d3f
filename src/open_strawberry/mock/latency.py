"""The mock server's latency model: how a reply is cut into chunks and paced."""

from __future__ import annotations

import random

import anyio

from open_strawberry.backends.tokens import count_tokens, split_tokens
from open_strawberry.mock.config import MockConfig

__all__ = ["Latency"]


class Latency:
    """The first chunk after ``ttft_s``, then ``tokens_per_chunk`` tokens per chunk at
    ``tokens_per_s``, each delay varied by up to ``jitter`` (a fraction) from a generator
    seeded with ``seed``. A zero ``ttft_s`` or ``tokens_per_s`` means no wait."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def chunks(self, text: str) -> list[str]:
        """``text`` cut into the chunks of a stream."""
        tokens = split_tokens(text)
        size = max(1, self.config.tokens_per_chunk)
        return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]

    def paced(self, index: int) -> bool:
        """Whether chunk ``index`` waits before it is sent."""
        return bool(self.config.ttft_s) if index == 0 else bool(self.config.tokens_per_s)

    async def pace(self, index: int, chunk: str) -> None:
        """Wait as long as chunk ``index`` takes to generate."""
        if index == 0:
            if self.config.ttft_s:
                await anyio.sleep(self._delay(self.config.ttft_s))
        elif self.config.tokens_per_s:
            await anyio.sleep(self._delay(count_tokens(chunk) / self.config.tokens_per_s))

    def _delay(self, seconds: float) -> float:
        jitter = self.config.jitter
        return max(0.0, seconds * (1 + self._rng.uniform(-jitter, jitter))) if jitter else seconds
