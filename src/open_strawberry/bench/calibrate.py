"""Prompt lengths for ``bench`` counted by the server's own tokenizer, where it has one.

A prompt of ``bench`` is a run of filler words. How many tokens a word makes, and how many the
chat template adds around the message, depend on the model: our own estimate missed by half on
llama.cpp (``--input-tokens 64`` sent 122 tokens). So before a run the prompt is sized with the
server's tokenizer: llama.cpp's ``POST /apply-template`` then ``POST /tokenize``, or vLLM's
``POST /tokenize`` with the messages. Two probe prompts of different lengths give the template's
overhead and the tokens per word, and the word count follows. A server with neither endpoint
keeps the estimate of one token a word; the report says which was used, and what the server
counted (its ``prompt_tokens``) beside what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from open_strawberry.backends.models import ModelSpec

__all__ = ["PromptSize", "estimated_size", "filler", "size_prompt"]

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")
_PROBE_WORDS = (16, 80)  # the two probe prompts' lengths in words


def filler(picks: bytes) -> str:
    """One filler word per byte of ``picks``, space separated."""
    return " ".join(_WORDS[pick % len(_WORDS)] for pick in picks)


@dataclass(frozen=True)
class PromptSize:
    """How to build prompts of the asked length: ``prefix_words`` shared words, then
    ``words`` words of each request's own; ``source`` says how it was sized."""

    prefix_words: int
    words: int
    source: str


def estimated_size(input_tokens: int, prefix_tokens: int) -> PromptSize:
    """Our estimate, without the server's tokenizer: a token a word, six for the template."""
    return PromptSize(prefix_words=prefix_tokens, words=max(1, input_tokens - prefix_tokens - 10),
                      source="estimate (one token a word; the server has no tokenize endpoint)")


async def size_prompt(spec: ModelSpec, *, input_tokens: int, prefix_tokens: int = 0,
                      timeout_s: float = 10.0) -> PromptSize:
    """The word counts that make prompts of ``input_tokens`` tokens (``prefix_tokens`` of them
    shared) on the server of ``spec``, counted by its tokenizer when it offers one; never fails
    (a server without one gets the estimate)."""
    if spec.api != "openai":
        return estimated_size(input_tokens, prefix_tokens)
    root = spec.base_url.removesuffix("/").removesuffix("/v1")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        counts = []
        for words in _PROBE_WORDS:
            messages = [{"role": "system", "content": "00000000-0"},  # as the bench prompts (runner.py)
                        {"role": "user", "content": filler(bytes(range(words)))}]
            count = await _llama_count(session, root, messages)
            if count is None:
                count = await _vllm_count(session, root, spec.model, messages)
            if count is None:
                return estimated_size(input_tokens, prefix_tokens)
            counts.append(count)
    per_word = (counts[1] - counts[0]) / (_PROBE_WORDS[1] - _PROBE_WORDS[0])
    if per_word <= 0:
        return estimated_size(input_tokens, prefix_tokens)
    overhead = counts[0] - per_word * _PROBE_WORDS[0]
    prefix_words = round(prefix_tokens / per_word)
    words = max(1, round((input_tokens - overhead) / per_word) - prefix_words)
    return PromptSize(prefix_words=prefix_words, words=words, source="the server's tokenizer (/tokenize)")


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    """The decoded JSON answer to ``body`` at ``url``, or None for any failure."""
    try:
        async with session.post(url, json=body) as response:
            if response.status != 200:
                return None
            return msgspec.json.decode(await response.read())
    except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError, UnicodeDecodeError):
        return None


async def _llama_count(session: aiohttp.ClientSession, root: str, messages: list[dict[str, str]]) -> int | None:
    """llama.cpp: the prompt its chat template makes of ``messages``, tokenized."""
    templated = await _post(session, f"{root}/apply-template", {"messages": messages})
    if not isinstance(templated, dict) or not isinstance(templated.get("prompt"), str):
        return None
    tokens = await _post(session, f"{root}/tokenize", {"content": templated["prompt"], "add_special": True})
    return len(tokens["tokens"]) if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list) else None


async def _vllm_count(session: aiohttp.ClientSession, root: str, model: str,
                      messages: list[dict[str, str]]) -> int | None:
    """vLLM: its ``/tokenize`` counts a chat's tokens with the template applied."""
    answer = await _post(session, f"{root}/tokenize", {"model": model, "messages": messages})
    return answer["count"] if isinstance(answer, dict) and isinstance(answer.get("count"), int) else None
