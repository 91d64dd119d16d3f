"""A simple, fast tokenizer for estimates: words, punctuation marks and their leading spaces.

It is not any model's tokenizer. It is used where a count is needed and the server gave
none (usage flagged ``estimated``), for the limiter's reservations, and by the mock server,
whose usage figures are exact counts of these tokens. The pieces join back to the text.
"""

from __future__ import annotations

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


class _TokenMemo:
    """Token counts of texts seen before: a conversation is estimated again at every turn, and
    all but its newest messages are the same strings as the turn before. It holds at most
    ``max_chars`` characters of text (then it starts over), however many texts that is."""

    def __init__(self, max_chars: int) -> None:
        self._counts: dict[str, int] = {}
        self._chars = 0
        self._max_chars = max_chars

    def count(self, text: str) -> int:
        tokens = self._counts.get(text)
        if tokens is None:
            tokens = count_tokens(text)
            if self._chars + len(text) > self._max_chars:
                self._counts.clear()
                self._chars = 0
            if len(text) <= self._max_chars:
                self._counts[text] = tokens
                self._chars += len(text)
        return tokens


_memo = _TokenMemo(16 * 2**20)


def estimate_prompt_tokens(messages: Iterable[ChatMessage], system: str | None = None) -> int:
    """Tokens a chat prompt takes: its texts plus a few per message for the template."""
    total = _memo.count(system) + _PER_MESSAGE if system else 0
    for message in messages:
        total += _memo.count(message.content) + _PER_MESSAGE
    return total + 2
