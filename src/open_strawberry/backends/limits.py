"""How much a reply may bring: far more than ``max_tokens`` allows is a broken server.

A token is a few characters (rarely more than 16, even for long words, code or base64), so a
reply of ``max_tokens * 32`` characters (and never less than 64 KiB) is beyond anything an
honest server sends; the reading stops there instead of filling memory and the traces file.
Where bytes are counted instead (a non-streamed body, one event of a stream), a character may
take 4 bytes of UTF-8, and the JSON around the text gets 64 KiB more.
"""

from __future__ import annotations

from open_strawberry.errors import StreamError

__all__ = ["CHARS_PER_TOKEN_CAP", "oversized_reply", "reply_byte_cap", "reply_cap"]

CHARS_PER_TOKEN_CAP = 32
_FLOOR = 64 * 1024
_BYTES_PER_CHAR = 4  # the most UTF-8 needs
_ENVELOPE = 64 * 1024  # the JSON around the text: ids, usage, timings


def reply_cap(max_tokens: int) -> int:
    """The most characters a reply to a request of ``max_tokens`` may have."""
    return max(_FLOOR, max_tokens * CHARS_PER_TOKEN_CAP)


def reply_byte_cap(max_tokens: int) -> int:
    """The most bytes a non-streamed body (or one event of a stream) for ``max_tokens`` may have."""
    return reply_cap(max_tokens) * _BYTES_PER_CHAR + _ENVELOPE


def oversized_reply(received: int, max_tokens: int, provider: str, *, in_bytes: bool = False) -> StreamError:
    """The error for a reply past :func:`reply_cap` (or :func:`reply_byte_cap`, ``in_bytes``)."""
    unit, cap = ("bytes", reply_byte_cap(max_tokens)) if in_bytes else ("characters", reply_cap(max_tokens))
    return StreamError(f"the reply passed {received:,} {unit}, far beyond what max_tokens={max_tokens} "
                       f"allows (at most {cap:,}); the server is not honouring max_tokens",
                       provider=provider)
