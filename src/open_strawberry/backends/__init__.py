"""LLM backends: the :class:`Backend` protocol, native clients, SDK adapters, model strings.

Each name is imported from its module on first use (a module-level ``__getattr__``), so a
module that needs only :class:`Backend` and :class:`ChatRequest` loads neither aiohttp nor an
SDK. The imports under ``TYPE_CHECKING`` say the same to type checkers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from open_strawberry._lazy import lazy_exports

if TYPE_CHECKING:
    from open_strawberry.backends.anthropic_messages import AnthropicMessagesBackend
    from open_strawberry.backends.base import Backend, ChatRequest, DeltaCallback, Deltas, Secret
    from open_strawberry.backends.models import PROVIDERS, ModelSpec, create_backend, parse_model
    from open_strawberry.backends.openai_chat import OpenAIChatBackend
    from open_strawberry.backends.sdk import AnthropicSDKBackend, OpenAISDKBackend

__all__ = [
    "PROVIDERS",
    "AnthropicMessagesBackend",
    "AnthropicSDKBackend",
    "Backend",
    "ChatRequest",
    "DeltaCallback",
    "Deltas",
    "ModelSpec",
    "OpenAIChatBackend",
    "OpenAISDKBackend",
    "Secret",
    "create_backend",
    "parse_model",
]

# {module: the public names it provides}; the imports under TYPE_CHECKING above, as data
_EXPORTS: dict[str, tuple[str, ...]] = {
    "open_strawberry.backends.anthropic_messages": ("AnthropicMessagesBackend",),
    "open_strawberry.backends.base": ("Backend", "ChatRequest", "DeltaCallback", "Deltas", "Secret"),
    "open_strawberry.backends.models": ("PROVIDERS", "ModelSpec", "create_backend", "parse_model"),
    "open_strawberry.backends.openai_chat": ("OpenAIChatBackend",),
    "open_strawberry.backends.sdk": ("AnthropicSDKBackend", "OpenAISDKBackend"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
