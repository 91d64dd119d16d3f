"""The model servers of a run: reachable before the run, or (the mock) started for it.

:func:`check_reachable` opens a TCP connection to a server, so that a wrong URL or a server
that is not running is one clear error before the run, naming the command that would start
it when the server is meant to be on this machine. :func:`open_model_servers` does that for
every model of a run, and starts the mock LLM in this event loop for a ``mock:`` or
``mock-anthropic:`` model that names no URL of its own when nothing listens at the mock's
default address: so the default model works offline with nothing else running.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import anyio

from open_strawberry.backends.models import DEFAULT_MOCK_PORT, PROVIDERS, ModelSpec
from open_strawberry.errors import ConfigurationError
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.redact import redact

__all__ = ["check_reachable", "open_model_servers", "start_hint"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MOCKS = frozenset({"mock", "mock-anthropic"})


def start_hint(provider: str | None, base_url: str) -> str:
    """What to say after "cannot reach": the command that starts the server, for the mock and
    llama.cpp on this machine; else the question whether it is running."""
    url = urlsplit(base_url)
    if url.hostname not in _LOCAL_HOSTS:
        return "is it running?"
    port = url.port or 80
    if provider in _MOCKS:
        return "start one with: open-strawberry mock-server" + (
            "" if port == DEFAULT_MOCK_PORT else f" --port {port}")
    if provider == "llamacpp":
        return f"start one with: open-strawberry serve MODEL --port {port}"
    return "is it running?"


async def _unreachable(base_url: str, timeout_s: float) -> str | None:
    """Why no TCP connection to the server of ``base_url`` could be made; None when one was."""
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with anyio.fail_after(timeout_s):
            stream = await anyio.connect_tcp(url.hostname or "localhost", port)
        await stream.aclose()
    except (OSError, TimeoutError) as exc:
        return "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
    return None


async def check_reachable(base_url: str, *, timeout_s: float = 10.0, provider: str | None = None) -> None:
    """Open (and close) a TCP connection to the server of ``base_url``; raise
    :class:`ConfigurationError` when none can be made, with :func:`start_hint` for ``provider``."""
    if (reason := await _unreachable(base_url, timeout_s)) is not None:
        raise ConfigurationError(f"cannot reach the model server at {redact(base_url)} ({reason}); "
                                 f"{start_hint(provider, base_url)}")


def _default_mock(spec: ModelSpec) -> bool:
    """A mock model that names no URL of its own: one the run may serve itself."""
    return spec.provider in _MOCKS and spec.base_url == PROVIDERS[spec.provider].base_url.rstrip("/")


async def open_model_servers(stack: AsyncExitStack, specs: Iterable[ModelSpec], *, timeout_s: float = 10.0) -> None:
    """Check that the server of every model in ``specs`` is reachable; for a mock model at
    the mock's default address with nothing listening there, start the mock there instead
    (:class:`~open_strawberry.mock.MockConfig`'s defaults, as ``open-strawberry mock-server``
    serves), say so on stderr, and leave it to ``stack`` to stop it. Raises
    :class:`ConfigurationError` for any other server that cannot be reached."""
    started: set[str] = set()
    for spec in specs:
        if spec.base_url in started:
            continue
        reason = await _unreachable(spec.base_url, timeout_s)
        if reason is None:
            continue
        if not _default_mock(spec):
            raise ConfigurationError(f"cannot reach the model server at {redact(spec.base_url)} ({reason}); "
                                     f"{start_hint(spec.provider, spec.base_url)}")
        url = urlsplit(spec.base_url)
        try:
            await stack.enter_async_context(open_mock_server(MockConfig(), host=url.hostname or "127.0.0.1",
                                                             port=url.port or DEFAULT_MOCK_PORT))
        except OSError as exc:
            raise ConfigurationError(f"cannot start the mock LLM at {spec.base_url}: {exc.strerror or exc}") from None
        started.add(spec.base_url)
        print(f"open-strawberry: nothing listened at {spec.base_url}: started the mock LLM there for this run "
              f"(it stops with the run; `open-strawberry mock-server` serves it on its own)",
              file=sys.stderr, flush=True)
