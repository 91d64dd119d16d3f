"""The signatures of the mock's thinking blocks, and its check of the blocks that come back.

Anthropic signs every ``thinking`` block and encrypts ``redacted_thinking`` ones; a later
request must carry them unmodified, or it is refused with a 400 ``invalid_request_error``.
The mock does the same with an HMAC keyed by its seed: :class:`Signer` makes signatures and
redacted data, and :meth:`Signer.problem` says what is wrong with an assistant turn that comes
back: an altered block, or a turn the mock wrote with thinking that comes back without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Signer", "ThinkingPart"]


class ThinkingPart(Protocol):
    """A content block of an assistant turn, as the Anthropic wire decodes it."""

    @property
    def type(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def thinking(self) -> str: ...

    @property
    def signature(self) -> str: ...

    @property
    def data(self) -> str: ...


class Signer:
    """Signs thinking and remembers which replies carried it (by a digest of their text)."""

    def __init__(self, seed: int) -> None:
        self._key = hashlib.sha256(f"open-strawberry mock thinking {seed}".encode()).digest()
        self._thought: set[bytes] = set()  # digests of the texts of replies that came with thinking

    def _mac(self, kind: str, payload: str) -> str:
        return base64.b64encode(hmac.digest(self._key, f"{kind}\0{payload}".encode(), "sha256")).decode()

    def signature(self, thinking: str) -> str:
        """The signature of a thinking block."""
        return self._mac("thinking", thinking)

    def redacted(self, thinking: str) -> str:
        """The opaque data of a redacted block standing for ``thinking``."""
        sealed = base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()
        return f"{sealed}.{self._mac('redacted', sealed)}"

    def issued(self, text: str) -> None:
        """Note that a reply with this text came with thinking."""
        self._thought.add(hashlib.sha256(text.encode()).digest())

    def problem(self, index: int, blocks: Sequence[ThinkingPart]) -> str | None:
        """What is wrong with assistant message ``index`` (its content blocks), in Anthropic's
        words; None when its thinking blocks are intact and none is missing."""
        for number, block in enumerate(blocks):
            where = f"messages.{index}.content.{number}"
            if block.type == "thinking" and not hmac.compare_digest(block.signature, self.signature(block.thinking)):
                return f"{where}: Invalid `signature` in `thinking` block"
            if block.type == "redacted_thinking":
                sealed, _, mac = block.data.partition(".")
                if not hmac.compare_digest(mac, self._mac("redacted", sealed)):
                    return f"{where}: Invalid `data` in `redacted_thinking` block"
        text = "".join(block.text for block in blocks if block.type == "text")
        has_thinking = any(block.type in ("thinking", "redacted_thinking") for block in blocks)
        if not has_thinking and hashlib.sha256(text.encode()).digest() in self._thought:
            return (f"messages.{index}.content: this assistant turn was written with thinking, and its `thinking` "
                    "blocks must be passed back unmodified")
        return None
