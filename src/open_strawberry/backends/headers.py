"""Reading the providers' rate-limit and retry headers.

OpenAI-compatible servers send ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
with resets written as durations (``1s``, ``12ms``, ``6m0s``); Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
with resets as RFC 3339 timestamps. Both may send ``retry-after`` (seconds or an HTTP
date), OpenAI also ``retry-after-ms``, and ``x-should-retry``.

A careless or hostile server's figures are not believed: a wait or reset that is not a
finite, non-negative number (``nan``, ``-5``, ``inf``) counts as absent, a reset beyond
``SANE_RESET_S`` (a day: no provider's window is longer) too, and a negative ``remaining``
as 0. An absurd ``retry-after`` within that bound is the limiter's to refuse.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from datetime import datetime

from open_strawberry.messages import RateLimits, RateLimitWindow

__all__ = ["SANE_RESET_S", "parse_duration", "parse_rate_limits", "retry_hints"]

SANE_RESET_S = 86_400.0  # a reset further away than a day is not believed

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"\s*[-+]?(?:\d|\.\d|nan|inf)", re.IGNORECASE)  # a number, readable or not: no HTTP date


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style duration (``6m0s``, ``1.5s``, ``20ms``); ``None`` if unreadable
    (``nan``, a negative or infinite number included)."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return _seconds(text)  # a bare number of seconds
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def _seconds(text: str, scale: float = 1.0) -> float | None:
    """``text`` as a finite, non-negative number of seconds (times ``scale``), else ``None``."""
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _parse_reset(text: str, now: float) -> float | None:
    seconds = parse_duration(text)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        seconds = max(0.0, moment.timestamp() - now)
    return seconds if seconds <= SANE_RESET_S else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0, int(value)) if math.isfinite(value) else None


def _window_names() -> tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]:
    """Per budget: the (limit, remaining, reset) header names that may carry it, OpenAI's first."""
    windows = []
    for field, openai_name, anthropic_name in (("requests", "requests", "requests"), ("tokens", "tokens", "tokens"),
                                               ("input_tokens", None, "input-tokens"),
                                               ("output_tokens", None, "output-tokens")):
        names: list[tuple[str, str, str]] = []
        if openai_name:
            names.append((f"x-ratelimit-limit-{openai_name}", f"x-ratelimit-remaining-{openai_name}",
                          f"x-ratelimit-reset-{openai_name}"))
        prefix = f"anthropic-ratelimit-{anthropic_name}"
        names.append((f"{prefix}-limit", f"{prefix}-remaining", f"{prefix}-reset"))
        windows.append((field, tuple(names)))
    return tuple(windows)


_WINDOW_NAMES = _window_names()


def parse_rate_limits(headers: Mapping[str, str], *, now: float | None = None) -> RateLimits | None:
    """The rate-limit budgets in ``headers`` (either provider's), or ``None`` if there are none."""
    windows: dict[str, RateLimitWindow] = {}
    for field, names in _WINDOW_NAMES:
        for limit_name, remaining_name, reset_name in names:
            limit, remaining = _int(headers.get(limit_name)), _int(headers.get(remaining_name))
            if limit is not None or remaining is not None:
                reset_text = headers.get(reset_name)
                reset = _parse_reset(reset_text, time.time() if now is None else now) if reset_text else None
                windows[field] = RateLimitWindow(limit=limit, remaining=remaining, reset_s=reset)
                break
    return RateLimits(**windows) if windows else None


def retry_hints(headers: Mapping[str, str], *, now: float | None = None) -> tuple[float | None, bool | None]:
    """(seconds to wait, whether to retry) from ``retry-after-ms``, ``retry-after`` and
    ``x-should-retry``; ``None`` where a header is absent or unreadable."""
    wait: float | None = None
    if (ms := headers.get("retry-after-ms")) is not None:
        wait = _seconds(ms, 0.001)
    if wait is None and (after := headers.get("retry-after")) is not None:
        wait = _seconds(after)
        if wait is None and not _NUMBER.match(after):
            try:
                moment = email.utils.parsedate_to_datetime(after)
            except (TypeError, ValueError):
                moment = None
            if moment is not None:
                wait = max(0.0, moment.timestamp() - (time.time() if now is None else now))
    should = headers.get("x-should-retry")
    return wait, (None if should is None else should.strip().lower() == "true")
