"""Keeping keys out of everything written: logs, records, manifests, reports, messages.

Every API key the package reads becomes a :class:`~open_strawberry.backends.base.Secret`,
which registers its value here; :func:`redact` then masks each registered value wherever it
appears (a server that echoes the key in an error body, a key of any shape: ``sk-...``,
``tok_...``), the user and password of a URL (``http://user:pass@host``), and strings shaped
like well-known keys even when they were never registered.

What a model wrote is masked by :func:`redact_json` when a record is encoded to be written
(:data:`~open_strawberry.messages.json_encoder`): only the registered values, since a reply
may mention URLs and key-shaped placeholders that are no secret, and only in what is written:
the records in memory, and so every request that sends a reply back (an Anthropic thinking
block whose signature covers its text), keep the text as it came. A reply shown while it streams
(the web UI's pages) goes through a :class:`StreamMasker`, which holds back a piece's tail for as
long as it could be the start of a registered key, so no key is shown one character at a time.
"""

from __future__ import annotations

import re
import threading
from typing import Any, TypeVar

import msgspec

__all__ = ["MASK", "MaskingEncoder", "StreamMasker", "redact", "redact_data", "redact_json", "register_secret"]

MASK = "***"
_SHORTEST = 6  # shorter values would mask ordinary words; no real key is that short
_lock = threading.Lock()
_values: tuple[str, ...] = ()  # longest first, so a key containing another is masked whole
_json_values: tuple[bytes, ...] = ()  # the same, as they appear inside a JSON string
_JSON_MASK = MASK.encode()
_Bytes = TypeVar("_Bytes", bytes, bytearray)
_SHAPES = re.compile(r"\b(?:sk-ant-|sk-|gsk_|hf_)[A-Za-z0-9_\-]{8,}")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")


def register_secret(value: str) -> None:
    """Mask ``value`` from now on wherever :func:`redact` looks."""
    global _values, _json_values
    if len(value) < _SHORTEST:
        return
    with _lock:
        if value not in _values:
            _values = tuple(sorted({*_values, value}, key=len, reverse=True))
            _json_values = tuple(msgspec.json.encode(v)[1:-1] for v in _values)


def redact(text: str) -> str:
    """``text`` with every registered key, key-shaped string and URL password masked."""
    for value in _values:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SHAPES.sub(MASK, text) if ("sk-" in text or "gsk_" in text or "hf_" in text) else text


def redact_json(raw: _Bytes) -> _Bytes:
    """``raw`` (a JSON document) with every registered key masked inside its strings: a key a
    server echoed into a reply, whole or one character per chunk (the record holds the
    assembled text). Returns ``raw`` itself when it holds none."""
    for value in _json_values:
        if value in raw:
            raw = raw.replace(value, _JSON_MASK)
    return raw


class StreamMasker:
    """Masks the registered keys in a text that arrives in pieces (one streamed reply).

    :meth:`feed` returns what may be shown of the text so far: each whole key masked, less a
    tail that could still grow into a key (a key streamed one character at a time is never
    shown in part); the tail comes out with the next piece that shows it is no key, or from
    :meth:`flush` at the end. Only registered values are held back, as :func:`redact_json` masks.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        # hold the tail that could still grow into a key (a whole key too, where a longer one
        # begins with it), and with it every whole key that runs over where the tail starts
        cut = len(text) - max((_started(text, value) for value in _values), default=0)
        moved = True
        while moved:
            moved = False
            for value in _values:
                at = text.find(value, max(0, cut - len(value) + 1))
                if -1 < at < cut:
                    cut, moved = at, True
        self._held = text[cut:]
        return _masked(text[:cut])

    def flush(self) -> str:
        """What was held back, masked (the text ended: it grew into no longer key)."""
        held, self._held = self._held, ""
        return _masked(held)


def _masked(text: str) -> str:
    for value in _values:  # longest first: a key that holds another is masked whole
        if value in text:
            text = text.replace(value, MASK)
    return text


def _started(text: str, value: str) -> int:
    """The length of the longest end of ``text`` that begins ``value`` (and is shorter); 0: none."""
    at = text.find(value[0], max(0, len(text) - len(value) + 1))
    while at != -1:
        if value.startswith(text[at:]):
            return len(text) - at
        at = text.find(value[0], at + 1)
    return 0


def redact_data(data: Any) -> Any:
    """:func:`redact` applied to every string inside ``data`` (dicts, lists, tuples), keys too."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data)
    return data


class MaskingEncoder:
    """A ``msgspec.json.Encoder`` whose output has the registered keys masked
    (:func:`redact_json`): what it encodes is written to disk or shown, never sent back to a
    model (:data:`open_strawberry.messages.json_encoder` is one)."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()

    def encode(self, obj: Any) -> bytes:
        return redact_json(self._encoder.encode(obj))

    def encode_into(self, obj: Any, buffer: bytearray) -> None:
        """Encode ``obj`` into ``buffer``, replacing its content."""
        self._encoder.encode_into(obj, buffer)
        masked = redact_json(buffer)
        if masked is not buffer:
            buffer[:] = masked
