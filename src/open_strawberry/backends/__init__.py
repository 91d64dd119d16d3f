"""LLM backends: the :class:`Backend` protocol, native clients, SDK adapters, model strings."""

from open_strawberry.backends.anthropic_messages import AnthropicMessagesBackend
from open_strawberry.backends.base import Backend, ChatRequest, DeltaCallback, Secret
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
    "ModelSpec",
    "OpenAIChatBackend",
    "OpenAISDKBackend",
    "Secret",
    "create_backend",
    "parse_model",
]
