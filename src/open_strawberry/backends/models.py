"""Model strings (``provider:model[@base_url]``), their providers, keys, and backend creation.

Examples: ``openai:gpt-4o-mini``, ``anthropic:claude-3-5-sonnet-latest``,
``vllm:Qwen/Qwen2.5-7B-Instruct@http://gpu-box:8000/v1``, ``ollama:llama3.1:8b``,
``mock:reasoner@http://127.0.0.1:8765/v1``. The model name may itself hold colons (ollama
tags); only the first colon separates the provider, and ``@`` followed by ``http://`` or
``https://`` starts the base URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from open_strawberry.backends.anthropic_messages import AnthropicMessagesBackend
from open_strawberry.backends.base import Backend, Secret
from open_strawberry.backends.http import check_one_authorization
from open_strawberry.backends.openai_chat import OpenAIChatBackend
from open_strawberry.errors import MissingAPIKeyError, ModelSpecError

__all__ = ["DEFAULT_MOCK_PORT", "PROVIDERS", "ModelSpec", "Provider", "create_backend", "parse_model"]

DEFAULT_MOCK_PORT = 8765


@dataclass(frozen=True)
class Provider:
    """What a provider prefix means: which wire API, where, and which key."""

    api: Literal["openai", "anthropic"]
    base_url: str
    key_env: str | None  # the variable holding its key, if it takes one
    key_required: bool

    @property
    def local(self) -> bool:
        """A server of one's own (no published limits): hosted APIs require a key."""
        return not self.key_required


PROVIDERS: Mapping[str, Provider] = {
    "openai": Provider("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", True),
    "anthropic": Provider("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", True),
    "groq": Provider("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", True),
    "vllm": Provider("openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", False),
    "sglang": Provider("openai", "http://127.0.0.1:30000/v1", None, False),
    "llamacpp": Provider("openai", "http://127.0.0.1:8080/v1", None, False),
    "ollama": Provider("openai", "http://127.0.0.1:11434/v1", None, False),
    "lmstudio": Provider("openai", "http://127.0.0.1:1234/v1", None, False),
    "mock": Provider("openai", f"http://127.0.0.1:{DEFAULT_MOCK_PORT}/v1", None, False),
    "mock-anthropic": Provider("anthropic", f"http://127.0.0.1:{DEFAULT_MOCK_PORT}", None, False),
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string."""

    provider: str
    model: str
    base_url: str

    @property
    def api(self) -> Literal["openai", "anthropic"]:
        return PROVIDERS[self.provider].api

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model(text: str) -> ModelSpec:
    """Parse ``provider:model[@base_url]``; raise :class:`ModelSpecError` saying what is wrong."""
    known = ", ".join(PROVIDERS)
    provider, colon, rest = text.partition(":")
    if not colon or not provider:
        raise ModelSpecError(f"model {text!r} needs a provider prefix, as in 'openai:gpt-4o-mini'; "
                             f"known providers: {known}")
    if provider not in PROVIDERS:
        raise ModelSpecError(f"model {text!r}: unknown provider {provider!r}; known providers: {known}")
    model, base_url = rest, PROVIDERS[provider].base_url
    for scheme in ("@http://", "@https://"):
        at = rest.rfind(scheme)
        if at >= 0:
            model, base_url = rest[:at], rest[at + 1 :]
            break
    if not model:
        raise ModelSpecError(f"model {text!r} names no model after {provider + ':'!r}")
    base_url = base_url.rstrip("/")
    try:
        url = urlsplit(base_url)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ModelSpecError(f"model {text!r}: the server URL {base_url!r} is not valid ({exc})") from None
    if not url.hostname:
        raise ModelSpecError(f"model {text!r}: the server URL {base_url!r} names no host")
    if PROVIDERS[provider].api == "anthropic" and base_url.endswith("/v1"):
        base_url = base_url[: -len("/v1")]  # the client adds /v1/messages itself
    return ModelSpec(provider, model, base_url)


def api_key_for(spec: ModelSpec, *, api_key_env: str | None = None,
                environ: Mapping[str, str] | None = None) -> Secret | None:
    """The key for ``spec`` from the environment; raise if the provider needs one and it is unset,
    or if it would clash with a user and password in the server URL."""
    environ = os.environ if environ is None else environ
    provider = PROVIDERS[spec.provider]
    name = api_key_env or provider.key_env
    value = environ.get(name, "") if name else ""
    if value:
        if spec.api == "openai":  # sent as a bearer token: Anthropic's x-api-key goes beside basic auth
            check_one_authorization(spec.base_url, {"authorization": ""}, f"{name} is set")
        return Secret(value)
    if provider.key_required or api_key_env:
        raise MissingAPIKeyError(
            f"model {spec} needs an API key: set the environment variable {name}"
            + ("" if api_key_env else " (or name another one with --api-key-env)")
        )
    return None


def create_backend(model: str | ModelSpec, *, api_key_env: str | None = None,
                   environ: Mapping[str, str] | None = None, **options: Any) -> Backend:
    """A native backend for ``model``; ``options`` go to the client (timeouts, pool size...)."""
    spec = parse_model(model) if isinstance(model, str) else model
    key = api_key_for(spec, api_key_env=api_key_env, environ=environ)
    common: dict[str, Any] = {"base_url": spec.base_url, "model": spec.model, "api_key": key,
                              "provider": spec.provider, **options}
    if spec.api == "anthropic":
        return AnthropicMessagesBackend(**common)
    return OpenAIChatBackend(**common)
