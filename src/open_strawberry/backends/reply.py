"""One reply as its pieces arrive, whatever the wire: the answer and the thinking apart.

Every backend (native or SDK adapter, streamed or not) hands what it reads to a
:class:`ReplyBuilder`: pieces of the ``content`` field (where thinking may come inline, as
``<think>…</think>`` from a server without a reasoning parser), pieces of thinking from a
field of its own (``reasoning``, ``reasoning_content``, Anthropic's ``thinking_delta``), and
the provider's opaque blocks. The builder times them, caps their size, passes each delta on
(the answer's to ``on_delta``, the thinking's to ``on_delta.reasoning``, see
:class:`~open_strawberry.backends.base.Deltas`) and makes the :class:`Completion`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from open_strawberry.backends.base import DeltaCallback, reasoning_callback
from open_strawberry.backends.limits import oversized_reply, reply_cap
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.backends.tokens import count_tokens
from open_strawberry.errors import StreamError
from open_strawberry.messages import Completion, RateLimits, Usage

__all__ = ["ReplyBuilder", "ThinkSplitter", "arrived_whole", "split_inline_think", "with_reasoning_tokens"]

T = TypeVar("T")


def arrived_whole(decoder: msgspec.json.Decoder[T], raw: bytes, provider: str, what: str,
                  clock: Stopwatch | None) -> tuple[T, Stopwatch]:
    """A whole reply body that arrived now (a batch's result line), decoded, and ``clock`` (or a
    new one) marking its arrival; a body that is not one is a :class:`StreamError`."""
    clock = clock or Stopwatch()
    clock.chunk()
    try:
        return decoder.decode(raw), clock
    except msgspec.DecodeError as exc:
        raise StreamError(f"malformed {what}: {exc}", provider=provider) from None

_OPEN, _CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Splits streamed content that may carry its thinking inline: ``<think>…</think>`` then
    the answer. Tags split across chunks are held back until they are whole; content that does
    not open with ``<think>`` (leading whitespace aside) is the answer as it comes. (A reply
    whose opening tag is missing, because the chat template wrote it, is streamed as answer
    text: :func:`split_inline_think` splits the whole reply at its ``</think>`` afterwards.)
    """

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        self._state: Literal["start", "thinking", "after", "answer"] = "start"
        self._held = ""

    def feed(self, piece: str) -> list[tuple[bool, str]]:
        """The parts of ``piece`` that are settled now: ``(is_thinking, text)`` in order."""
        self._held += piece
        out: list[tuple[bool, str]] = []
        while self._held:
            held = self._held
            if self._state == "start":
                stripped = held.lstrip()
                if stripped.startswith(_OPEN):
                    self._held, self._state = stripped[len(_OPEN):], "thinking"
                elif _OPEN.startswith(stripped):
                    break  # too little yet to tell
                else:
                    self._state = "answer"
            elif self._state == "thinking":
                end = held.find(_CLOSE)
                if end >= 0:
                    out.append((True, held[:end]))
                    self._held, self._state = held[end + len(_CLOSE):], "after"
                    continue
                keep = _partial_tag(held, _CLOSE)
                out.append((True, held[: len(held) - keep]))
                self._held = held[len(held) - keep:]
                break
            elif self._state == "after":  # the blank lines between </think> and the answer
                self._held = held.lstrip()
                if self._held:
                    self._state = "answer"
            else:
                out.append((False, held))
                self._held = ""
        return [(thinking, text) for thinking, text in out if text]

    def close(self) -> list[tuple[bool, str]]:
        """What is still held at the end of the reply: thinking cut off (no ``</think>``
        came), or a short answer."""
        held, self._held = self._held, ""
        if not held or self._state == "after":
            return []
        return [(self._state == "thinking", held)]


def _partial_tag(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that starts ``tag`` (a tag cut by a chunk)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split_inline_think(text: str) -> tuple[str, str]:
    """``(thinking, answer)`` of a whole reply whose thinking is inline; a ``</think>`` with no
    ``<think>`` before it closes thinking whose opening tag the chat template wrote. Text with
    no such tags is all answer."""
    end = text.find(_CLOSE)
    if end < 0:
        splitter = ThinkSplitter()
        parts = splitter.feed(text) + splitter.close()
        return "".join(t for thinking, t in parts if thinking), "".join(t for thinking, t in parts if not thinking)
    start = text.find(_OPEN, 0, end)
    if start >= 0 and text[:start].strip():
        return "", text  # <think> in the middle of an answer: quoted, not thinking
    thinking = text[start + len(_OPEN) if start >= 0 else 0: end]
    return thinking, text[end + len(_CLOSE):].lstrip()


def with_reasoning_tokens(usage: Usage, reported: int | None, reasoning: str) -> Usage:
    """``usage`` with its thinking tokens: the server's count, else (when the reply had thinking
    text) our tokenizer's, flagged ``estimated``; left unset for a reply without thinking."""
    if reported is not None and (reported or reasoning):
        return msgspec.structs.replace(usage, reasoning_tokens=reported)
    if reasoning:
        return msgspec.structs.replace(usage, reasoning_tokens=count_tokens(reasoning), estimated=True)
    return usage


class ReplyBuilder:
    """The pieces of one reply: see the module docstring.

    ``inline_think``: look for ``<think>`` in the content (OpenAI-compatible servers).
    ``clock``: the reply's stopwatch (a non-streamed call's, which timed the body); with
    ``timed`` false the pieces are not timed again. A reply past :func:`reply_cap` characters
    (answer and thinking together) raises :class:`~open_strawberry.errors.StreamError`.
    """

    __slots__ = ("_splitter", "blocks", "cap", "clock", "max_tokens", "on_reasoning", "on_text", "provider",
                 "reasoning_parts", "received", "text_parts", "timed")

    def __init__(self, max_tokens: int, on_delta: DeltaCallback | None, provider: str, *,
                 inline_think: bool = False, clock: Stopwatch | None = None, timed: bool = True) -> None:
        self.max_tokens, self.cap = max_tokens, reply_cap(max_tokens)
        self.provider = provider
        self.on_text, self.on_reasoning = on_delta, reasoning_callback(on_delta)
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.blocks: list[dict[str, Any]] = []
        self.received = 0
        self.clock = clock or Stopwatch()
        self.timed = timed
        self._splitter = ThinkSplitter() if inline_think else None

    def content(self, piece: str) -> None:
        """A piece of the content field: the answer, or thinking written inline."""
        if self._splitter is None:
            self.answer(piece)
            return
        for thinking, text in self._splitter.feed(piece):
            (self.thinking if thinking else self.answer)(text)

    def whole_content(self, content: str) -> None:
        """The content field of a non-streamed reply: split at its ``</think>`` (if it has
        thinking inline), so that even thinking without its opening tag is passed on as such."""
        if self._splitter is None:
            self.answer(content)
            return
        thinking, answer = split_inline_think(content)
        self.thinking(thinking)
        self.answer(answer)

    def answer(self, piece: str) -> None:
        """A piece of the answer."""
        if piece:
            if self.timed:
                self.clock.chunk()
            self._take(piece, self.text_parts, self.on_text)

    def thinking(self, piece: str) -> None:
        """A piece of thinking, from a field of its own."""
        if piece:
            if self.timed:
                self.clock.thinking()
            self._take(piece, self.reasoning_parts, self.on_reasoning)

    def _take(self, piece: str, parts: list[str], callback: DeltaCallback | None) -> None:
        parts.append(piece)
        self.received += len(piece)
        if self.received > self.cap:
            raise oversized_reply(self.received, self.max_tokens, self.provider)
        if callback is not None:
            callback(piece)

    def finish(self) -> tuple[str, str]:
        """``(answer, thinking)`` of the whole reply, once it is complete."""
        if self._splitter is not None:
            for thinking, text in self._splitter.close():
                (self.thinking if thinking else self.answer)(text)
        text, reasoning = "".join(self.text_parts), "".join(self.reasoning_parts)
        if self._splitter is not None and not reasoning and _CLOSE in text:
            reasoning, text = split_inline_think(text)
        return text, reasoning.strip()

    def completion(self, text: str, reasoning: str, *, finish_reason: str | None, usage: Usage, model: str | None,
                   rate_limits: RateLimits | None = None) -> Completion:
        """The completion of the reply: ``text`` and ``reasoning`` as :meth:`finish` gave them.

        A usage no server can mean (a negative count, more output tokens than the reply may have
        characters, more prompt tokens than any context holds) raises
        :class:`~open_strawberry.errors.StreamError`: a garbled reply, retried like a malformed
        chunk, rather than figures that would poison the totals, the costs and ``bench``."""
        _check_usage(usage, self.max_tokens, self.provider)
        thought = bool(reasoning or self.blocks)
        timings = self.clock.timings(thought=thought)
        if thought and not text:
            timings = msgspec.structs.replace(timings, first_answer_s=None)
        return Completion(text=text, finish_reason=finish_reason, usage=usage, timings=timings, model=model,
                          rate_limits=rate_limits, reasoning=reasoning, reasoning_blocks=tuple(self.blocks))


_MOST_PROMPT_TOKENS = 10**8  # far beyond any context window


def _check_usage(usage: Usage, max_tokens: int, provider: str) -> None:
    counts = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
              "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
              "reasoning_tokens": usage.reasoning_tokens if isinstance(usage.reasoning_tokens, int) else 0}
    bounds = {"output_tokens": reply_cap(max_tokens), "reasoning_tokens": reply_cap(max_tokens)}
    for name, count in counts.items():
        most = bounds.get(name, _MOST_PROMPT_TOKENS)
        if not 0 <= count <= most:
            raise StreamError(f"the reply's usage is not believable: {name}={count:,} (expected 0 to {most:,}); "
                              "a garbled reply", provider=provider)
