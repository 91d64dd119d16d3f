"""The project's exception tree.

Every error the package raises on purpose derives from :class:`OpenStrawberryError`::

    OpenStrawberryError
    ├── ConfigurationError        bad options, files or actor graphs, found before any work
    │   ├── GraphError            actors whose messages do not fit together
    │   │   └── DeadlockRiskError a cycle whose channels cannot hold every trace in flight
    │   ├── ModelSpecError        a model string that cannot be parsed or has no provider
    │   └── MissingAPIKeyError    a provider needs a key and its variable is unset
    ├── BackendError              an LLM call failed (provider, status, request id attached)
    │   ├── RetryableBackendError worth another attempt
    │   │   ├── RateLimitedError       429
    │   │   ├── OverloadedError        529, 503
    │   │   ├── ServerError            408, 409, other 5xx
    │   │   ├── BackendTimeoutError    connect or read timeout, or an attempt's total deadline
    │   │   ├── BackendConnectionError refused, reset, dropped
    │   │   └── StreamError            truncated stream, malformed chunk, error event mid-stream
    │   └── FatalBackendError     retrying cannot help
    │       ├── BadRequestError        400, 413, 422
    │       ├── AuthenticationError    401, 403
    │       ├── ModelNotFoundError     404 (unknown model or endpoint)
    │       └── BackendClosedError     a call on a backend its owner has closed
    ├── AdmissionClosedError      submit() after the input was closed or interrupted
    ├── CallWithdrawnError        a call still waiting in its limiter when the run was interrupted
    ├── ActorCrashedError         an actor's loop died more often than its restart limit
    └── InterruptedRunError       a second interrupt cancelled the run before it drained

Errors from libraries are translated where they enter the package, with
``raise Mapped(...) from exc``; cancellation is never caught and turned into one of these.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorCrashedError",
    "AdmissionClosedError",
    "AuthenticationError",
    "BackendClosedError",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "CallWithdrawnError",
    "ConfigurationError",
    "DeadlockRiskError",
    "FatalBackendError",
    "GraphError",
    "InterruptedRunError",
    "MissingAPIKeyError",
    "ModelNotFoundError",
    "ModelSpecError",
    "OpenStrawberryError",
    "OverloadedError",
    "RateLimitedError",
    "RetryableBackendError",
    "ServerError",
    "StreamError",
    "error_for_status",
]


class OpenStrawberryError(Exception):
    """Root of every error raised by open-strawberry."""


class ConfigurationError(OpenStrawberryError):
    """Options, files or a composition of actors that cannot work; raised before any work."""


class GraphError(ConfigurationError):
    """The actors' inputs and outputs do not form a graph every trace can travel."""


class DeadlockRiskError(GraphError):
    """A channel on a cycle is smaller than ``max_traces``, so the cycle could deadlock."""


class AdmissionClosedError(OpenStrawberryError):
    """A trace was submitted after the system stopped admitting new ones."""


class CallWithdrawnError(OpenStrawberryError):
    """A call that was still waiting in its limiter (for a budget, a cooldown or a retry's
    backoff) when the run was interrupted: this attempt was never sent (a retry's earlier
    attempts were), and its trace is not written, so a rerun makes the whole trace again,
    its earlier turns included (:meth:`~open_strawberry.limiter.Limiter.withdraw_waiting`)."""


class ActorCrashedError(OpenStrawberryError):
    """An actor's loop died more times than its restart policy allows."""

    def __init__(self, actor: str, restarts: int, unfinished: int, cause: BaseException) -> None:
        self.actor = actor
        self.restarts = restarts
        self.unfinished = unfinished
        super().__init__(
            f"actor {actor!r} crashed {restarts} times and was not restarted again; "
            f"last error: {type(cause).__name__}: {cause}. "
            f"The run stopped; {unfinished} admitted trace(s) did not finish "
            "(records written so far are complete; rerun to resume)."
        )


class InterruptedRunError(OpenStrawberryError):
    """The run was cancelled by a second interrupt; unfinished traces were not written."""


class ModelSpecError(ConfigurationError):
    """A model string that is not ``provider:model[@base_url]`` with a known provider."""


class MissingAPIKeyError(ConfigurationError):
    """The provider needs an API key and the environment variable that holds it is unset."""


class BackendError(OpenStrawberryError):
    """An LLM call failed.

    ``status`` is the HTTP status (``None`` for network errors), ``retry_after`` the wait
    in seconds the server asked for (``retry-after-ms``/``retry-after``), ``should_retry``
    the server's ``x-should-retry`` (``None`` when absent), and ``attempts`` how many
    attempts were made when the error was final.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.attempts = attempts
        self.rate_limits: Any = None  # the RateLimits the error response reported, if any

    def __str__(self) -> str:
        where = " ".join(p for p in (self.provider, f"HTTP {self.status}" if self.status else None) if p)
        return f"{where}: {self.args[0]}" if where else str(self.args[0])


class RetryableBackendError(BackendError):
    """A failure that another attempt may not meet (rate limits, overload, network)."""

    retryable = True


class RateLimitedError(RetryableBackendError):
    """429: a request or token budget of the provider is spent for now."""


class OverloadedError(RetryableBackendError):
    """529 or 503: the provider is overloaded."""


class ServerError(RetryableBackendError):
    """408, 409 or another 5xx."""


class BackendTimeoutError(RetryableBackendError):
    """No connection, or no byte within the read timeout."""


class BackendConnectionError(RetryableBackendError):
    """The connection was refused, reset or dropped."""


class StreamError(RetryableBackendError):
    """The stream broke: truncated, a malformed chunk, or an error event mid-stream."""


class FatalBackendError(BackendError):
    """A failure another attempt cannot fix (bad request, bad key, unknown model)."""


class BadRequestError(FatalBackendError):
    """400, 413 or 422: the request itself is wrong."""


class AuthenticationError(FatalBackendError):
    """401 or 403: the key is missing, wrong or not allowed."""


class ModelNotFoundError(FatalBackendError):
    """404: the model or the endpoint does not exist."""


class BackendClosedError(FatalBackendError):
    """A call on a backend after its owner closed it; a closed backend never reopens."""


def error_for_status(status: int) -> type[BackendError]:
    """The error class for an HTTP status, following the providers' retry rules."""
    if status == 429:
        return RateLimitedError
    if status in (503, 529):
        return OverloadedError
    if status in (408, 409) or status >= 500:
        return ServerError
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return ModelNotFoundError
    return BadRequestError
