"""A :class:`LimitedBackend`: any backend behind a limiter, with retries.

Each attempt holds a :meth:`Limiter.reserve` reservation for the one call it makes, so
the limiter gets its place back on every path (success, error, cancellation). Retryable
errors (:class:`~open_strawberry.errors.RetryableBackendError`) are tried again after
``retry-after`` (when the server gave one) or an exponential backoff with full jitter,
until ``max_attempts`` or the call's total ``deadline_s`` (a ``retry-after`` past it ends the
call at once, its message saying so); a rate-limit or overload error
also starts a cooldown on the whole backend (the limiter's doing). ``x-should-retry``
overrides the error's type: ``false`` stops, ``true`` retries even a fatal error. The error
that ends a call carries ``attempts``; a successful Completion carries the failed attempts
in ``timings.failed_attempts`` and every limiter wait in ``timings.limiter_wait_s``. Once the
limiter withdraws its waits (:meth:`Limiter.withdraw_waiting`: the run was interrupted), a call
waiting for a budget, a cooldown or its next attempt raises
:class:`~open_strawberry.errors.CallWithdrawnError` at once.

Text deltas of a failed attempt may already have reached ``on_delta``; the Completion holds
only the final attempt, so a trace never keeps a half-written turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import msgspec

from open_strawberry.backends.base import Backend, ChatRequest, DeltaCallback
from open_strawberry.backends.models import PROVIDERS, ModelSpec, create_backend, parse_model
from open_strawberry.backends.tokens import estimate_prompt_tokens
from open_strawberry.errors import BackendError, RetryableBackendError
from open_strawberry.limiter.aimd import AIMDConfig
from open_strawberry.limiter.core import Cost, Limiter, LimiterConfig
from open_strawberry.messages import Completion, FailedAttempt

__all__ = ["LimitedBackend", "RetryPolicy", "create_limited_backend"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    deadline_s: float = 600.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2 ** (attempt - 1))]."""
        return rng.uniform(0.0, min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1)))


class LimitedBackend:
    """Wraps ``backend``; share one instance (or one :class:`Limiter`) among all its callers.

    A LimitedBackend owns the backend it wraps: :meth:`aclose` (or leaving ``async with``)
    closes it, so hand it a backend nobody else closes (:func:`create_limited_backend`
    creates both). Cancelling a call gives its limiter place back.
    """

    def __init__(self, backend: Backend, limiter: Limiter | None = None, retry: RetryPolicy | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.backend = backend
        self.limiter = limiter or Limiter()
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()

    @property
    def provider(self) -> str:
        return self.backend.provider

    @property
    def model(self) -> str:
        return self.backend.model

    def estimate(self, request: ChatRequest) -> Cost:
        return Cost(input_tokens=estimate_prompt_tokens(request.messages, request.system),
                    output_tokens=self.limiter.output_estimate(request.max_tokens))

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion:
        clock, limiter, policy = self.limiter.clock, self.limiter, self.retry
        started = clock.now()
        failures: list[FailedAttempt] = []
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            asked = sent = clock.now()
            try:
                async with limiter.reserve(self.estimate(request), attempt=attempt) as reservation:
                    sent = clock.now()
                    waited += sent - asked
                    completion = await self.backend.complete(request, on_delta=on_delta, stream=stream)
                    timings = completion.timings
                    reservation.settle(usage=completion.usage, rate_limits=completion.rate_limits,
                                       latency_s=timings.ttft_s if timings.ttft_s is not None else timings.e2e_s)
            except BackendError as exc:  # the reservation is released (and a cooldown started) by now
                exc.attempts = attempt
                retry = isinstance(exc, RetryableBackendError) if exc.should_retry is None else exc.should_retry
                if not retry or attempt >= policy.max_attempts:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else policy.backoff(attempt, self._rng)
                if clock.now() + delay - started > policy.deadline_s:
                    if exc.retry_after is not None:  # say why no retry came: the server's wait is past the deadline
                        exc.args = (f"{exc.args[0]} (the server asked to wait {delay:g} s, past the call's "
                                    f"deadline_s={policy.deadline_s:g} s: given up)", *exc.args[1:])
                    raise
                failures.append(FailedAttempt(error=type(exc).__name__, status=exc.status,
                                              elapsed_s=clock.now() - sent, backoff_s=delay))
                await limiter.pause(delay)  # raises CallWithdrawnError once the run is interrupted
                continue
            return msgspec.structs.replace(completion, timings=msgspec.structs.replace(
                timings, limiter_wait_s=waited, attempts=attempt, failed_attempts=tuple(failures)))

    async def aclose(self) -> None:
        """Close the wrapped backend, which this LimitedBackend owns; idempotent when the
        wrapped backend's ``aclose`` is (every backend of this package's is)."""
        await self.backend.aclose()

    async def __aenter__(self) -> LimitedBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def create_limited_backend(model: str | ModelSpec, *, max_concurrency: int | None = None, rpm: float | None = None,
                           tpm: float | None = None, input_tpm: float | None = None, output_tpm: float | None = None,
                           retry: RetryPolicy | None = None, api_key_env: str | None = None,
                           **options: Any) -> LimitedBackend:
    """A native backend for ``model`` behind its own limiter, with sensible defaults.

    Hosted APIs get the budgets given (and learn the others from their headers). A local
    server (vLLM, SGLang, llama.cpp, ollama, LM Studio, the mock) with no budgets and no
    ``max_concurrency`` gets adaptive concurrency instead, since nothing tells its limits.
    ``options`` go to the client: ``timeout_s`` (each read), ``call_timeout_s`` (each attempt,
    whole), ``connect_timeout_s``, ``max_connections``, ``headers``...
    """
    spec = parse_model(model) if isinstance(model, str) else model
    budgets_known = any(v is not None for v in (max_concurrency, rpm, tpm, input_tpm, output_tpm))
    adaptive = AIMDConfig() if PROVIDERS[spec.provider].local and not budgets_known else None
    config = LimiterConfig(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm, input_tpm=input_tpm,
                           output_tpm=output_tpm, adaptive=adaptive)
    return LimitedBackend(create_backend(spec, api_key_env=api_key_env, **options), Limiter(config), retry)
