"""How many requests a local model server can work on at once, asked before a run.

* llama.cpp's ``llama-server``: ``GET /props`` gives ``total_slots`` (``--parallel``); older
  builds answer ``GET /slots`` with one entry per slot.
* llama-cpp-python's server: one request at a time, and by default it cuts off the stream in
  progress when another request arrives, so more than one call in flight loses work. It is
  known by its ``/v1/models`` entries (``"owned_by": "me"``) and the absence of ``/props``.
* vLLM, SGLang, ollama, LM Studio: no slot count to read (they batch many requests); the
  adaptive limiter finds the level.

:func:`probe_capacity` never fails a run: a server that answers none of these is "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from open_strawberry.backends.models import PROVIDERS, ModelSpec

__all__ = ["ServerCapacity", "probe_capacity"]


@dataclass(frozen=True)
class ServerCapacity:
    """What was found: ``slots`` requests at once (``None``: not known), the server, and where
    the figure came from (for the run's header and manifest)."""

    slots: int | None
    server: str
    source: str
    system_role: bool | None = None  # does the model's chat template know a system role? (llama.cpp says)

    def describe(self) -> str:
        if self.slots is None:
            return f"{self.server}: capacity not reported ({self.source})"
        return f"{self.server}: {self.slots} slot{'s' if self.slots != 1 else ''} ({self.source})"


async def probe_capacity(spec: ModelSpec, *, timeout_s: float = 5.0) -> ServerCapacity | None:
    """Ask the server of ``spec`` how many requests it serves at once; ``None`` for hosted APIs,
    the mock, and servers that speak the Anthropic wire format (nothing to ask)."""
    provider = PROVIDERS[spec.provider]
    if not provider.local or provider.api != "openai" or spec.provider == "mock":
        return None  # hosted APIs say their limits in headers; the mock has none to say
    root = spec.base_url.removesuffix("/").removesuffix("/v1")
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        props = await _get_json(session, f"{root}/props")
        if isinstance(props, dict) and isinstance(props.get("total_slots"), int) and props["total_slots"] > 0:
            caps = props.get("chat_template_caps")
            system_role = caps.get("supports_system_role") if isinstance(caps, dict) else None
            return ServerCapacity(props["total_slots"], "llama.cpp", "/props total_slots",
                                  system_role if isinstance(system_role, bool) else None)
        slots = await _get_json(session, f"{root}/slots")
        if isinstance(slots, list) and slots and all(isinstance(s, dict) for s in slots):
            return ServerCapacity(len(slots), "llama.cpp", "/slots")
        models = await _get_json(session, f"{spec.base_url}/models")
        owners = {m.get("owned_by") for m in models.get("data", []) if isinstance(m, dict)} \
            if isinstance(models, dict) and isinstance(models.get("data"), list) else set()
        if owners == {"me"}:
            return ServerCapacity(1, "llama-cpp-python", "serves one request at a time")
        known = {"vllm": "vLLM", "sglang": "SGLang", "library": "ollama"}
        server = next((known[o] for o in owners if o in known), spec.provider)
        return ServerCapacity(None, server, "no slot count; adaptive concurrency")


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    """The decoded JSON at ``url``, or ``None`` for any failure (missing endpoint, not JSON,
    refused, timeout): probing is best effort."""
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return None
            return msgspec.json.decode(await response.read())
    except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError, UnicodeDecodeError):
        return None
