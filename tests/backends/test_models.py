"""Model strings, providers and API keys."""

from __future__ import annotations

import pytest

from open_strawberry.backends import AnthropicMessagesBackend, OpenAIChatBackend, create_backend, parse_model
from open_strawberry.backends.base import Secret
from open_strawberry.backends.models import api_key_for
from open_strawberry.errors import MissingAPIKeyError, ModelSpecError


@pytest.mark.parametrize(
    ("text", "provider", "model", "base_url"),
    [
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", "https://api.openai.com/v1"),
        ("anthropic:claude-3-5-sonnet-latest", "anthropic", "claude-3-5-sonnet-latest", "https://api.anthropic.com"),
        ("vllm:Qwen/Qwen2.5-7B-Instruct@http://gpu:8000/v1", "vllm", "Qwen/Qwen2.5-7B-Instruct", "http://gpu:8000/v1"),
        ("ollama:llama3.1:8b", "ollama", "llama3.1:8b", "http://127.0.0.1:11434/v1"),
        ("llamacpp:any@http://127.0.0.1:9000/v1/", "llamacpp", "any", "http://127.0.0.1:9000/v1"),
        ("anthropic:claude@http://127.0.0.1:9/v1", "anthropic", "claude", "http://127.0.0.1:9"),
        ("mock:reasoner", "mock", "reasoner", "http://127.0.0.1:8765/v1"),
        ("vllm:user@org/model@https://h/v1", "vllm", "user@org/model", "https://h/v1"),
    ],
)
def test_model_strings_parse(text: str, provider: str, model: str, base_url: str) -> None:
    spec = parse_model(text)
    assert (spec.provider, spec.model, spec.base_url) == (provider, model, base_url)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o", "needs a provider prefix"),
        ("azure:gpt-4o", "unknown provider 'azure'; known providers: openai, anthropic"),
        ("openai:", "names no model"),
        (":model", "needs a provider prefix"),
    ],
)
def test_bad_model_strings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        parse_model(text)


def test_a_missing_required_key_names_the_variable() -> None:
    with pytest.raises(MissingAPIKeyError, match="set the environment variable OPENAI_API_KEY .*--api-key-env"):
        create_backend("openai:gpt-4o", environ={})
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        create_backend("anthropic:claude", environ={"OPENAI_API_KEY": "x"})
    with pytest.raises(MissingAPIKeyError, match="MY_KEY"):
        create_backend("vllm:m", api_key_env="MY_KEY", environ={})


def test_keys_come_from_the_environment_and_local_servers_need_none() -> None:
    assert api_key_for(parse_model("ollama:llama3"), environ={}) is None
    key = api_key_for(parse_model("openai:gpt-4o"), api_key_env="TEAM_KEY", environ={"TEAM_KEY": "sk-team"})
    assert isinstance(key, Secret)
    assert key.reveal() == "sk-team"
    assert "sk-team" not in repr(key) and "sk-team" not in f"{key}"
    assert isinstance(create_backend("vllm:m", environ={}), OpenAIChatBackend)
    assert isinstance(create_backend("anthropic:c", environ={"ANTHROPIC_API_KEY": "k"}), AnthropicMessagesBackend)
