"""Reading answers as models write them: normalisation and numbers."""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["last_number", "normalize_answer", "parse_number", "plain_text", "show_number", "without_thinking"]

_WRAPPERS = re.compile(r"^(?:\*\*|__|`|\$|\\\(|\\\[)+|(?:\*\*|__|`|\$|\\\)|\\\])+$")
_BOXED = re.compile(r"\\boxed\{(.*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_OPEN_THINK, _CLOSE_THINK = "<think>", "</think>"


def without_thinking(text: str) -> str:
    """The answer part of a reply whose thinking came inline (``<think>…</think>`` first, or
    thinking closed by a ``</think>`` whose opening the chat template wrote; an unclosed
    ``<think>`` is thinking to the end). Backends split thinking off already; this keeps the
    arbiter and the graders from reading a backend's that does not."""
    stripped = text.lstrip()
    if stripped.startswith(_OPEN_THINK):
        end = stripped.find(_CLOSE_THINK)
        return "" if end < 0 else stripped[end + len(_CLOSE_THINK):].lstrip()
    end = text.find(_CLOSE_THINK)
    if end >= 0 and _OPEN_THINK not in text[:end]:
        return text[end + len(_CLOSE_THINK):].lstrip()
    return text


def normalize_answer(text: str) -> str:
    """Strip what models wrap answers in: whitespace, markdown, ``$...$``, ``\\boxed{}``, a final period."""
    text = text.strip()
    previous = None
    while previous != text:
        previous = text
        text = _WRAPPERS.sub("", text).strip()
        if (boxed := _BOXED.search(text)) is not None:
            text = boxed[1].strip()
        text = text.rstrip(".").strip()
    return text


def parse_number(text: str) -> Fraction | None:
    """A number written as an integer, decimal, ``1,234,567``, ``3/4``, ``\\frac{3}{4}``, ``1e3``,
    ``50%`` (fifty) or ``$12``; the whole text must be the number. ``None`` otherwise."""
    text = normalize_answer(text).replace(" ", "").lstrip("$").rstrip("%")
    if (frac := _FRAC.match(text)) is not None:
        value = Fraction(int(frac[2]), int(frac[3])) if int(frac[3]) else None
        return -value if value is not None and frac[1] else value
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            return Fraction(int(numerator), int(denominator)) if int(denominator) else None
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> Fraction | None:
    """The last number written anywhere in ``text`` ("so the total is 42 apples." gives 42),
    thinking left inline aside (see :func:`without_thinking`)."""
    numbers = _NUMBER.findall(normalize_answer(without_thinking(text)))
    return parse_number(numbers[-1]) if numbers else None


def plain_text(text: str) -> str:
    return " ".join(normalize_answer(text).lower().split())


def show_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value} (~{float(value):.6g})"
