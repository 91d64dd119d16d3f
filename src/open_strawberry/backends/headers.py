"""Reading the providers' rate-limit and retry headers.

OpenAI-compatible servers send ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
with resets written as durations (``1s``, ``12ms``, ``6m0s``); Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
with resets as RFC 3339 timestamps. Both may send ``retry-after`` (seconds or an HTTP
date), OpenAI also ``retry-after-ms``, and ``x-should-retry``.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from datetime import datetime

from open_strawberry.messages import RateLimits, RateLimitWindow

__all__ = ["parse_duration", "parse_rate_limits", "retry_hints"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style duration (``6m0s``, ``1.5s``, ``20ms``); ``None`` if unreadable."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        try:
            return float(text)  # a bare number of seconds
        except ValueError:
            return None
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def _parse_reset(text: str, now: float) -> float | None:
    seconds = parse_duration(text)
    if seconds is not None:
        return seconds
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, moment.timestamp() - now)


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


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
        try:
            wait = float(ms) / 1000
        except ValueError:
            wait = None
    if wait is None and (after := headers.get("retry-after")) is not None:
        try:
            wait = float(after)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(after)
            except (TypeError, ValueError):
                moment = None
            if moment is not None:
                wait = max(0.0, moment.timestamp() - (time.time() if now is None else now))
    should = headers.get("x-should-retry")
    return wait, (None if should is None else should.strip().lower() == "true")
