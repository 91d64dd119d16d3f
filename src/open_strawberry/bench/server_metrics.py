"""A server's own account of a run, for ``bench``: llama.cpp's Prometheus ``/metrics``
(``llama-server --metrics``, which ``serve`` turns on), read before and after the run, gives
the busy share of its decode steps: ``n_busy_slots_per_decode`` (a mean over all decode
steps so far) weighted by ``n_decode_total``, over the run's steps, per slot. A step with
fewer slots busy is quicker, so this share reads a little lower than the share of time.
"""

from __future__ import annotations

import re

import aiohttp

__all__ = ["busy_share", "llamacpp_metrics"]

_COUNTER = re.compile(r"^(llamacpp:[a-z_]+)\s+([-+0-9.e]+)\s*$", re.MULTILINE)
_MAX_BYTES = 1 << 20  # a metrics page is a few kB: read no more than this of any answer


async def llamacpp_metrics(base_url: str, *, timeout_s: float = 5.0) -> dict[str, float] | None:
    """The ``llamacpp:`` figures of the server at ``base_url`` (an OpenAI-style URL; its
    ``/v1`` is left off), or ``None`` where it states none (no ``--metrics``, another server,
    no answer). Sends no key and follows no redirect."""
    root = base_url.removesuffix("/").removesuffix("/v1")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(f"{root}/metrics", allow_redirects=False) as response:
            if response.status != 200:
                return None
            text = (await response.content.read(_MAX_BYTES)).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
    found = {}
    for name, value in _COUNTER.findall(text):
        try:
            found[name] = float(value)
        except ValueError:
            continue
    return found or None


def busy_share(before: dict[str, float], after: dict[str, float], slots: int) -> float | None:
    """The share of ``slots`` busy over the decode steps between the readings ``before`` and
    ``after`` (see the module); ``None`` when no step was made or the figures are missing."""
    total, per_decode = "llamacpp:n_decode_total", "llamacpp:n_busy_slots_per_decode"
    if slots < 1 or not {total, per_decode} <= before.keys() & after.keys():
        return None
    decodes = after[total] - before[total]
    if decodes <= 0:
        return None
    busy = after[per_decode] * after[total] - before[per_decode] * before[total]
    return min(1.0, max(0.0, busy / decodes / slots))
