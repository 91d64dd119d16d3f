"""Logging: structlog, configured once by :func:`configure_logging`.

Records carry ``actor`` and ``trace_id`` from contextvars (bound by the runtime for each
worker and each message). Values under secret-looking keys are masked, and every other
string goes through :func:`~open_strawberry.redact.redact` (the values of the keys in use,
key-shaped strings, URL passwords), so a key never reaches a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from open_strawberry.redact import MASK, redact, redact_data

__all__ = ["configure_logging", "redact_secrets"]

_SECRET_KEYS = re.compile(r"(api[_-]?key|authorization|x-api-key|secret|token|password)$", re.IGNORECASE)


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets by key name, by value and by shape."""
    for key, value in event.items():
        if _SECRET_KEYS.search(key):
            event[key] = MASK
        elif isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, (dict, list, tuple)):
            event[key] = redact_data(value)
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when logging was set up
    (test runners and embedding programs swap it, and may close the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool = False, level: str = "info") -> None:
    """Send structured logs to stderr: readable lines by default, JSON lines with ``json``."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
