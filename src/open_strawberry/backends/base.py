"""The :class:`Backend` protocol every LLM client implements, and the request it takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from open_strawberry.messages import ChatMessage, Completion
from open_strawberry.redact import register_secret

__all__ = ["Backend", "ChatRequest", "DeltaCallback", "Secret"]

DeltaCallback = Callable[[str], None]
"""Called with each text delta as it arrives (synchronously: keep it cheap)."""


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One chat call: the conversation and the sampling settings.

    ``system`` is sent the way each API wants it (a first ``system`` message for
    OpenAI-compatible servers, the ``system`` field for Anthropic). ``model`` overrides the
    backend's model when set.
    """

    messages: tuple[ChatMessage, ...]
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra_body: dict[str, Any] | None = None  # more fields for the body, e.g. vLLM's {"ignore_eos": true}


@runtime_checkable
class Backend(Protocol):
    """An LLM endpoint. Implementations: the native OpenAI-compatible and Anthropic clients,
    and adapters around the official SDK clients.

    ``complete`` sends one request and returns the whole :class:`Completion`, streaming
    text deltas to ``on_delta`` as they arrive when ``stream`` is true. It makes exactly one
    attempt (retries belong to the limiter) and raises only
    :class:`~open_strawberry.errors.BackendError` subclasses, which say whether another
    attempt may succeed. Cancellation propagates and closes the connection.
    """

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None, stream: bool = True
    ) -> Completion: ...

    async def aclose(self) -> None: ...


class Secret:
    """An API key that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)  # masked from now on in logs, records, manifests and reports

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)
