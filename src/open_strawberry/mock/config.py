"""Everything the mock server can be told: :class:`MockConfig`."""

from __future__ import annotations

from typing import Literal

import msgspec

from open_strawberry.mock.faults import FaultRates

__all__ = ["MockConfig"]


class MockConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the mock server can be told (also readable from TOML/JSON).

    ``rpm``, ``tpm``, ``input_tpm`` and ``output_tpm`` are per-minute budgets enforced like
    the providers do (buckets that start full and refill continuously); a request that does
    not fit gets a 429 with the provider's body and headers. ``faults`` injects failures.
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
