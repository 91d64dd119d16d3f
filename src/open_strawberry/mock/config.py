"""Everything the mock server can be told: :class:`MockConfig`."""

from __future__ import annotations

import math
import random
from typing import Literal

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.mock.faults import FaultRates

__all__ = ["BatchBehaviour", "MockConfig", "ReplyLengths", "Thinking"]

Thinking = Literal["off", "reasoning", "reasoning_content", "both", "reasoning_details", "think_tags",
                   "think_tags_open"]
"""How the OpenAI-compatible wire sends thinking: not at all; in a ``reasoning`` field (vLLM,
ollama); in ``reasoning_content`` (llama.cpp, SGLang, DeepSeek); in both (older vLLM); as
OpenRouter (``reasoning`` plus signed ``reasoning_details``); inline in ``content`` as
``<think>…</think>`` (no reasoning parser), or without its opening tag (the template wrote it)."""


class ReplyLengths(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Reply lengths drawn from a heavy-tailed distribution, for long-tail benchmarks.

    Each reply is drawn a length in tokens: ``lognormal`` (median ``median_tokens``, log
    spread ``sigma``) or ``pareto`` (median ``median_tokens``, tail index ``alpha``: the lower,
    the heavier the tail), at most ``max_tokens`` (and never more than the request's own
    ``max_tokens``). A reply the reasoner wrote shorter is padded with filler before its text
    (its final answer, if any, stays last); one it wrote longer is kept. The draw is seeded by
    the server's seed, the request's seed, the problem and the turn: a rerun replays it, and two
    clients that send the same conversations get the same lengths.
    """

    distribution: Literal["lognormal", "pareto"] = "lognormal"
    median_tokens: int = 200
    sigma: float = 1.0
    alpha: float = 1.5
    max_tokens: int = 8192

    def draw(self, rng: random.Random) -> int:
        """One reply length in tokens (at least 1, at most ``max_tokens``)."""
        if self.distribution == "lognormal":
            drawn = rng.lognormvariate(math.log(self.median_tokens), self.sigma)
        else:  # x_m * 2 ** (1 / alpha) is the median of a Pareto with scale x_m
            drawn = self.median_tokens / 2 ** (1 / self.alpha) * rng.paretovariate(self.alpha)
        return max(1, min(self.max_tokens, round(drawn)))

    def check(self) -> None:
        for name, count in {"median_tokens": self.median_tokens, "max_tokens": self.max_tokens}.items():
            if count < 1:
                raise ConfigurationError(f"reply_lengths.{name} must be at least 1, got {count}")
        for name, amount in {"sigma": self.sigma, "alpha": self.alpha}.items():
            if not (math.isfinite(amount) and amount > 0):
                raise ConfigurationError(f"reply_lengths.{name} must be a number above 0, got {amount}")


class BatchBehaviour(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the mock's batch APIs behave (:mod:`open_strawberry.mock.batches`).

    A batch is in progress for ``delay_s`` after it was created, then ended. Each request of
    it comes back ``errored`` or ``expired`` at these shares, drawn from the server's seed and
    the request's ``custom_id`` (a retry under a new id draws anew); the rest succeed. With
    ``invalid``, every batch fails validation at its first line (OpenAI: a ``failed`` batch
    whose error names line 1; Anthropic: a 400 naming ``requests[0]``).
    """

    delay_s: float = 0.0
    errored: float = 0.0
    expired: float = 0.0
    invalid: bool = False

    def check(self) -> None:
        if not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ConfigurationError(f"batch.delay_s must be a number of at least 0, got {self.delay_s}")
        for name, share in {"errored": self.errored, "expired": self.expired}.items():
            if not (math.isfinite(share) and 0 <= share <= 1):
                raise ConfigurationError(f"batch.{name} must be between 0 and 1, got {share}")
        if self.errored + self.expired > 1:
            raise ConfigurationError("batch.errored and batch.expired add up to more than 1")


class MockConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the mock server can be told (also readable from TOML/JSON).

    ``rpm``, ``tpm``, ``input_tpm`` and ``output_tpm`` are per-minute budgets enforced like
    the providers do (buckets that start full and refill continuously); a request that does
    not fit gets a 429 with the provider's body and headers. ``faults`` injects failures.
    ``reply_lengths`` draws each reply's length from a heavy-tailed distribution (None: the
    reasoner's own, short replies).

    ``thinking`` makes the OpenAI-compatible wire a reasoning model's server (:data:`Thinking`;
    a request with ``reasoning_effort: "none"`` gets no thinking, as from llama.cpp and ollama).
    The Anthropic wire thinks when a request asks (``thinking: {"type": "enabled"}``), whatever
    this says, signs each thinking block and checks the blocks that come back in later turns,
    as Anthropic does; ``thinking_redacted`` adds a ``redacted_thinking`` block to each reply.
    ``batch`` says how the batch APIs behave (:class:`BatchBehaviour`).
    """

    model: str = "mock-reasoner"
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0  # 0: no pacing after the first token
    tokens_per_chunk: int = 1
    jitter: float = 0.0
    seed: int = 0
    accuracy: float = 0.8
    confident_after: int = 3
    flavor: Literal["openai", "llamacpp", "ollama"] = "openai"
    keepalive_every: int = 0
    error_after_chunks: int | None = None
    cache_ttl_s: float = 300.0
    api_key: str | None = None  # when set, requests must carry this key
    rpm: float | None = None
    tpm: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    faults: FaultRates = FaultRates()
    fault_retry_after_s: float = 0.5
    stall_s: float = 30.0
    reply_lengths: ReplyLengths | None = None
    thinking: Thinking = "off"
    thinking_redacted: bool = False
    batch: BatchBehaviour = BatchBehaviour()

    def check(self) -> None:
        """ConfigurationError naming the first field no server can use: a negative or
        non-finite time or pace, a share (``jitter``, ``accuracy``, a fault rate) outside 0..1,
        a budget that is not above 0, fewer than one token a chunk."""
        shares = {"jitter": self.jitter, "accuracy": self.accuracy}
        for name, share in shares.items():
            if not (math.isfinite(share) and 0 <= share <= 1):
                raise ConfigurationError(f"{name} must be between 0 and 1, got {share}")
        amounts = {"ttft_s": self.ttft_s, "tokens_per_s": self.tokens_per_s, "cache_ttl_s": self.cache_ttl_s,
                   "fault_retry_after_s": self.fault_retry_after_s, "stall_s": self.stall_s}
        for name, amount in amounts.items():
            if not (math.isfinite(amount) and amount >= 0):
                raise ConfigurationError(f"{name} must be a number of at least 0, got {amount}")
        budgets = {"rpm": self.rpm, "tpm": self.tpm, "input_tpm": self.input_tpm, "output_tpm": self.output_tpm}
        for name, budget in budgets.items():
            if budget is not None and not (math.isfinite(budget) and budget > 0):
                raise ConfigurationError(f"{name} must be a number above 0, got {budget}")
        counts = {"confident_after": self.confident_after, "keepalive_every": self.keepalive_every,
                  "error_after_chunks": self.error_after_chunks}
        for name, count in counts.items():
            if count is not None and count < 0:
                raise ConfigurationError(f"{name} must not be negative, got {count}")
        if self.tokens_per_chunk < 1:
            raise ConfigurationError(f"tokens_per_chunk must be at least 1, got {self.tokens_per_chunk}")
        self.faults.check()
        if self.reply_lengths is not None:
            self.reply_lengths.check()
        self.batch.check()
