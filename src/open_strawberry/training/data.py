"""Training rows: read and check a dataset file in TRL's formats, and mix in other rows.

* SFT: ``{"messages": [{"role", "content"}, ...]}`` (what ``export sft`` writes; an assistant
  message may carry its thinking in ``reasoning_content``, see :func:`thinking_for_template`);
* DPO: ``{"prompt": [...], "chosen": [...], "rejected": [...]}``, conversational (what ``export dpo``
  writes).

Every line is checked before any training starts (a bad line is one error naming the file
and the line). ``builtin:chat`` names the small ordinary-chat set shipped with the package
(simple questions and answers, written for it), so a mix works offline.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from open_strawberry.errors import ConfigurationError
from open_strawberry.traces.exports import inline_thinking
from open_strawberry.training.config import CHAT_MIX, MixSource

__all__ = ["chat_data", "mixed_rows", "read_rows", "thinking_for_template"]

_ROLES = {"system", "user", "assistant"}


def chat_data() -> Path:
    """The ordinary-chat rows shipped with the package (SFT format)."""
    return Path(str(resources.files("open_strawberry.training") / "resources" / "chat.jsonl"))


def _check_messages(value: Any, where: str, field: str) -> None:
    if not isinstance(value, list) or not value:
        raise ConfigurationError(f"{where}: field {field!r} must be a non-empty list of messages")
    for message in value:
        if (not isinstance(message, dict) or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)):
            raise ConfigurationError(f"{where}: field {field!r} holds a message that is not "
                                     '{"role": "system|user|assistant", "content": "..."}')
        if not isinstance(message.get("reasoning_content", ""), str | None):
            raise ConfigurationError(f"{where}: field {field!r} holds a message whose reasoning_content is not text")


def _known(message: dict[str, Any]) -> dict[str, Any]:
    """The keys of a message that training reads: a row's other keys are left out."""
    return {key: message[key] for key in ("role", "content", "reasoning_content") if message.get(key) is not None}


def thinking_for_template(rows: list[dict[str, Any]], chat_template: str | None) -> tuple[list[dict[str, Any]], int]:
    """(``rows`` as the model's chat template can train on their thinking; how many messages
    had their thinking moved).

    A template that renders ``reasoning_content`` (TRL's training templates for Qwen3 and
    DeepSeek-R1) gets the rows as they are. Any other template would drop it silently, so each
    message's thinking is put inline before its answer (``<think>…</think>``, as
    ``export --thinking inline`` writes it) and the key removed.
    """
    if chat_template and "reasoning_content" in chat_template:
        return rows, 0
    moved = 0

    def fold(message: dict[str, Any]) -> dict[str, Any]:
        nonlocal moved
        plain = {"role": message["role"], "content": message["content"]}
        if message.get("reasoning_content"):
            moved += 1
            plain["content"] = inline_thinking(message["reasoning_content"], message["content"])
        return plain

    folded = [{field: [fold(message) for message in messages] for field, messages in row.items()} for row in rows]
    return folded, moved


def read_rows(path: str | Path, kind: Literal["sft", "dpo"]) -> list[dict[str, Any]]:
    """Every row of the JSONL file ``path``, checked for ``kind``'s format."""
    path = chat_data() if str(path) == CHAT_MIX else Path(path)
    fields = ("messages",) if kind == "sft" else ("prompt", "chosen", "rejected")
    rows = []
    try:
        with path.open("rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    row = json.loads(line)
                except ValueError:
                    raise ConfigurationError(f"{where}: not valid JSON") from None
                if not isinstance(row, dict) or any(field not in row for field in fields):
                    raise ConfigurationError(f"{where}: a {kind.upper()} row needs the fields {', '.join(fields)}"
                                             + (" (for DPO, export pairs with `export dpo`)" if kind == "dpo" else ""))
                for field in fields:
                    _check_messages(row[field], where, field)
                if kind == "sft" and row["messages"][-1]["role"] != "assistant":
                    raise ConfigurationError(f"{where}: an SFT conversation must end with the assistant's message")
                rows.append({field: [_known(message) for message in row[field]] for field in fields})
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the training data: {exc.strerror or exc}") from None
    if not rows:
        raise ConfigurationError(f"{path}: holds no training rows")
    return rows


def mixed_rows(data: str | Path, kind: Literal["sft", "dpo"], mix: list[MixSource],
               seed: int = 0) -> tuple[list[dict[str, Any]], int]:
    """(the rows of ``data`` with each mix source's share added, shuffled; how many were mixed in).

    A source with fraction ``f`` makes up ``f`` of the result: with ``n`` rows of data and
    fractions adding up to ``F``, a source adds ``round(n * f / (1 - F))`` rows, drawn without
    replacement while it has enough, then again from the start.
    """
    rows = read_rows(data, kind)
    total = sum(source.fraction for source in mix)
    rng = random.Random(seed)
    added: list[dict[str, Any]] = []
    for source in mix:
        extra = read_rows(source.path, kind)
        wanted = max(1, round(len(rows) * source.fraction / (1 - total)))
        for start in range(0, wanted, len(extra)):
            added += rng.sample(extra, min(len(extra), wanted - start))
    result = rows + added
    rng.shuffle(result)
    return result, len(added)
