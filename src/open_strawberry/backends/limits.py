"""How much text a reply may bring: far more than ``max_tokens`` allows is a broken server.

A token is a few characters (rarely more than 16, even for long words, code or base64), so a
reply of ``max_tokens * 32`` characters (and never less than 64 KiB) is beyond anything an
honest server sends; the reading stops there instead of filling memory and the traces file.
"""

from __future__ import annotations

from open_strawberry.errors import StreamError

__all__ = ["CHARS_PER_TOKEN_CAP", "oversized_reply", "reply_cap"]

CHARS_PER_TOKEN_CAP = 32
_FLOOR = 64 * 1024


def reply_cap(max_tokens: int) -> int:
    """The most characters a reply to a request of ``max_tokens`` may have."""
    return max(_FLOOR, max_tokens * CHARS_PER_TOKEN_CAP)


def oversized_reply(received: int, max_tokens: int, provider: str) -> StreamError:
    return StreamError(f"the reply passed {received:,} characters, far beyond what max_tokens={max_tokens} "
                       f"allows (at most {reply_cap(max_tokens):,}); the server is not honouring max_tokens",
                       provider=provider)
