"""The :class:`Backend` protocol every LLM client implements, and the request it takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import msgspec

from open_strawberry.messages import ChatMessage, Completion
from open_strawberry.redact import register_secret

__all__ = ["Backend", "ChatRequest", "DeltaCallback", "Deltas", "ReasoningHistory", "Secret", "reasoning_callback"]

DeltaCallback = Callable[[str], None]
"""Called with each delta of the answer text as it arrives (synchronously: keep it cheap)."""

ReasoningHistory: TypeAlias = Literal["auto", "keep", "drop"]
"""Whether earlier turns' thinking goes back to the server: ``auto``, as the provider wants it
(Anthropic's blocks always; the reasoning field of OpenAI-compatible servers that render it,
see :data:`~open_strawberry.backends.openai_chat.REASONING_FIELDS`); ``keep``, always (in the
provider's field, ``reasoning_content`` where none is known); ``drop``, never."""


class Deltas:
    """A :data:`DeltaCallback` that takes thinking deltas too, apart from the answer's.

    Call it with a piece of answer text; call :meth:`reasoning` with a piece of thinking.
    Backends that know thinking find the second through :func:`reasoning_callback`; a
    backend written before thinking (or one that does not stream it) just calls it with text,
    so callers may pass a :class:`Deltas` to any backend, and any plain callable to ours.
    """

    __slots__ = ("_text", "reasoning")

    def __init__(self, text: DeltaCallback, reasoning: DeltaCallback) -> None:
        self._text = text
        self.reasoning = reasoning

    def __call__(self, text: str) -> None:
        self._text(text)


def reasoning_callback(on_delta: DeltaCallback | None) -> DeltaCallback | None:
    """Where the thinking deltas of a call go: ``on_delta.reasoning`` for a :class:`Deltas`,
    else nowhere (a plain callback asked for the answer only)."""
    return on_delta.reasoning if isinstance(on_delta, Deltas) else None


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One chat call: the conversation and the sampling settings.

    ``system`` is sent the way each API wants it (a first ``system`` message for
    OpenAI-compatible servers, the ``system`` field for Anthropic). ``model`` overrides the
    backend's model when set.

    Thinking: ``reasoning_effort`` is sent as OpenAI-compatible servers take it
    (``"low"``, ``"medium"``, ``"high"``, ``"none"``...); ``thinking_budget`` turns Anthropic's
    extended thinking on with that many tokens (``budget_tokens``; at least 1024 and below
    ``max_tokens``, checked by the caller); ``reasoning_history`` says whether earlier assistant
    turns' thinking goes back (:data:`ReasoningHistory`). Thinking is never put in ``content``.
    """

    messages: tuple[ChatMessage, ...]
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra_body: dict[str, Any] | None = None  # more fields for the body, e.g. vLLM's {"ignore_eos": true}
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    reasoning_history: ReasoningHistory = "auto"


@runtime_checkable
class Backend(Protocol):
    """An LLM endpoint. Implementations: the native OpenAI-compatible and Anthropic clients,
    and adapters around the official SDK clients.

    ``complete`` sends one request and returns the whole :class:`Completion`, streaming
    text deltas to ``on_delta`` as they arrive when ``stream`` is true (and thinking deltas
    to its ``reasoning`` when it is a :class:`Deltas`; a backend that knows no thinking may
    ignore that and leave ``Completion.reasoning`` empty). It makes exactly one
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
