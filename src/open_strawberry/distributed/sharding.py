"""Which shard makes which ``(problem_id, sample)`` pair, and which server a shard calls.

A pair's shard is a stable hash of the pair (not of Python's ``hash``, which changes from one
process to the next), so every process, on every machine and in every rerun, puts a pair in
the same shard of ``shards``. Model strings may list several base URLs of the same model
(``vllm:qwen@http://a:8000/v1,http://b:8000/v1``): shard ``i`` calls server ``i mod n``.
"""

from __future__ import annotations

import hashlib
import re

from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ConfigurationError

__all__ = ["server_for_shard", "shard_file_name", "shard_of", "split_servers"]


def shard_of(problem_id: str, sample: int, shards: int) -> int:
    """The shard (``0 <= shard < shards``) that makes the pair ``(problem_id, sample)``."""
    digest = hashlib.blake2b(f"{problem_id}\0{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_file_name(index: int, shards: int) -> str:
    return f"shard-{index:04d}-of-{shards:04d}.jsonl"


def split_servers(model: str) -> list[str]:
    """``provider:model@URL1,URL2,...`` as one model string per server, each checked; a model
    string that names one server (or none) comes back alone."""
    found = re.search(r"@(?=https?://)", model)
    urls = model[found.end():].split(",") if found else []
    if len(urls) < 2:
        parse_model(model)
        return [model]
    assert found is not None
    if any(not url.strip() for url in urls):
        raise ConfigurationError(f"model {model!r}: an empty server URL in the list")
    models = [f"{model[:found.start()]}@{url.strip()}" for url in urls]
    for one in models:
        try:
            parse_model(one)
        except ConfigurationError as exc:
            raise ConfigurationError(f"model {model!r}: server {one.rpartition('@')[2]!r}: {exc}") from None
    return models


def server_for_shard(servers: list[str], index: int) -> str:
    return servers[index % len(servers)]
