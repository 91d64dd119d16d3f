"""A simple, fast tokenizer for estimates: words, punctuation marks and their leading spaces.

It is not any model's tokenizer. It is used where a count is needed and the server gave
none (usage flagged ``estimated``), for the limiter's reservations, and by the mock server,
whose usage figures are exact counts of these tokens. The pieces join back to the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from open_strawberry.messages import ChatMessage

__all__ = ["count_tokens", "estimate_prompt_tokens", "split_tokens"]

_TOKEN = re.compile(r"\s*(?:\w{1,8}|[^\w\s])|\s+")  # long words cost one token per 8 characters
_PER_MESSAGE = 4  # role markers and separators, as chat templates add them


def split_tokens(text: str) -> list[str]:
    """The text's tokens; ``"".join(split_tokens(t)) == t``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@functools.lru_cache(maxsize=8192)
def _text_tokens(text: str) -> int:
    """:func:`count_tokens`, remembered: a conversation is estimated again at every turn, and
    all but its newest messages are the same strings as the turn before."""
    return len(_TOKEN.findall(text))


def estimate_prompt_tokens(messages: Iterable[ChatMessage], system: str | None = None) -> int:
    """Tokens a chat prompt takes: its texts plus a few per message for the template."""
    total = _text_tokens(system) + _PER_MESSAGE if system else 0
    for message in messages:
        total += _text_tokens(message.content) + _PER_MESSAGE
    return total + 2
