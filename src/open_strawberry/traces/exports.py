"""From traces to training data: SFT and DPO exports.

Formats are the ones TRL and Hugging Face ``datasets`` load directly:

* SFT: ``{"messages": [{"role", "content"}, ...]}``, the whole conversation (system prompt,
  problem, every step and nudge), or with ``collapsed`` the steps folded into one assistant
  message, to train a model to reason in one turn;
* DPO: conversational preference pairs ``{"prompt": [...], "chosen": [...], "rejected": [...]}``
  where the prompt is the problem (without a system prompt: the two traces of a pair may have
  run under different system prompt variants), and chosen/rejected are one assistant message
  each (the collapsed steps), or the rest of the conversation with ``multi-turn``.

Thinking (``thinking``): a reasoning model's thinking goes in the ``reasoning_content`` key of
its assistant message (``field``, the default: what TRL's Qwen3 and DeepSeek-R1 training chat
templates read), inline before the answer as ``<think>…</think>`` (``inline``: open-r1's
Mixture-of-Thoughts layout), or nowhere (``drop``). Traces without thinking are exported as
they always were, except that ``collapsed`` with ``inline`` turns every trace into one
``<think>…</think>`` + answer turn: the steps before the last, and all thinking, become the
thinking, the last turn's answer the answer (so does ``collapsed`` with ``field`` for traces
that have thinking). That trains a model to reason in one turn.

Everything streams: the traces file is read line by line (DPO reads it twice, seeking back
for the traces it pairs), so memory follows the number of problems, not of traces.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import ChatMessage, TraceRecord, record_decoder
from open_strawberry.traces.files import read_trace_lines, read_traces, write_lines_atomically

__all__ = ["ExportCounts", "Thinking", "export_dpo", "export_sft", "inline_thinking", "prompt_messages"]

Thinking: TypeAlias = Literal["field", "inline", "drop"]
"""Where the thinking of each assistant turn goes in an export: see the module docstring."""

_encoder = msgspec.json.Encoder()


@dataclass
class ExportCounts:
    """What an export read and wrote. ``skipped``: traces not correct (SFT) or duplicate pairs
    (DPO). DPO only: ``all_correct`` and ``all_incorrect`` count the problems left out because
    every graded trace of theirs was correct, or incorrect; ``ungraded`` the traces without a grade."""

    read: int = 0
    written: int = 0
    skipped: int = 0
    problems: int = 0
    all_correct: int = 0
    all_incorrect: int = 0
    ungraded: int = 0


def prompt_messages(record: TraceRecord) -> list[ChatMessage]:
    """The system prompt (if any) and the problem: what a trace was asked."""
    head: list[ChatMessage] = []
    for message in record.messages:
        head.append(message)
        if message.role == "user":
            break
    return head


def _collapsed(record: TraceRecord, thinking: Thinking) -> ChatMessage:
    """The trace's assistant turns as one: the steps joined, or (with thinking kept, see the
    module docstring) the steps before the last and every turn's thinking as the thinking of
    the last turn's answer."""
    turns = [m for m in record.messages if m.role == "assistant"]
    thought = any(m.reasoning_content for m in turns)
    if thinking == "drop" or not turns or (thinking == "field" and not thought):
        steps = [m.content.strip() for m in turns if m.content.strip()]
        return ChatMessage(role="assistant", content="\n\n".join(steps))
    parts: list[str] = []
    for turn in turns:
        parts.append((turn.reasoning_content or "").strip())
        if turn is not turns[-1]:
            parts.append(turn.content.strip())
    reasoning = "\n\n".join(part for part in parts if part)
    return ChatMessage(role="assistant", content=turns[-1].content.strip(), reasoning_content=reasoning or None)


def inline_thinking(thinking: str, answer: str) -> str:
    """One turn's thinking put before its answer, as open-r1's Mixture-of-Thoughts writes it."""
    return f"<think>\n{thinking}\n</think>\n\n{answer}"


def _rest(record: TraceRecord) -> list[ChatMessage]:
    return list(record.messages[len(prompt_messages(record)):])


def _plain(messages: Iterable[ChatMessage], thinking: Thinking = "drop") -> list[dict[str, str]]:
    """The messages as TRL reads them, each turn's thinking where ``thinking`` says."""
    rows: list[dict[str, str]] = []
    for m in messages:
        row = {"role": m.role, "content": m.content}
        if m.reasoning_content and thinking == "field":
            row["reasoning_content"] = m.reasoning_content
        elif m.reasoning_content and thinking == "inline":
            row["content"] = inline_thinking(m.reasoning_content, m.content)
        rows.append(row)
    return rows


def export_sft(traces: str | os.PathLike[str], out: str | os.PathLike[str], *,
               format: Literal["messages", "collapsed"] = "messages", thinking: Thinking = "field") -> ExportCounts:
    """Write the correct traces as SFT examples; returns what was read and written.

    ``out`` is written whole or not at all, and never over ``traces`` (ConfigurationError)."""
    counts = ExportCounts()
    problems: set[str] = set()

    def lines() -> Iterator[bytes]:
        for record in read_traces(traces):
            counts.read += 1
            if record.correct is not True:
                counts.skipped += 1
                continue
            problems.add(record.problem_id)
            messages = list(record.messages) if format == "messages" else [*prompt_messages(record),
                                                                           _collapsed(record, thinking)]
            yield _encoder.encode({"messages": _plain(messages, thinking)}) + b"\n"

    counts.written = write_lines_atomically(out, lines(), inputs=[traces])
    counts.problems = len(problems)
    return counts


@dataclass
class _Candidates:
    """The traces of one problem that may be paired: (file offset, length) per side."""

    correct: list[tuple[int, int]] = field(default_factory=list)
    wrong: list[tuple[int, int]] = field(default_factory=list)


def _keep(side: list[tuple[int, int]], item: tuple[int, int], cap: int,
          prefer: Literal["short", "long", "first"]) -> None:
    """Add ``item`` (offset, length) to ``side``, keeping at most ``cap``: the first ones, or
    the shortest or longest."""
    if prefer == "first":
        if len(side) < cap:
            side.append(item)
        return
    side.append(item)
    side.sort(key=lambda entry: entry[1], reverse=prefer == "long")
    del side[cap:]


def export_dpo(traces: str | os.PathLike[str], out: str | os.PathLike[str], *,
               pairing: Literal["all", "extremes"] = "all", max_pairs: int = 4,
               format: Literal["collapsed", "multi-turn"] = "collapsed", thinking: Thinking = "field") -> ExportCounts:
    """Pair correct with incorrect traces of each problem that has both.

    ``all``: every pair of a correct and an incorrect trace, in file order, at most ``max_pairs`` a problem;
    ``extremes``: the shortest correct against the longest incorrect (one pair a problem).
    Identical pairs are written once. ``out`` is written whole or not at all, and never over
    ``traces`` (ConfigurationError).
    """
    if max_pairs < 1:
        raise ConfigurationError(f"max_pairs must be at least 1, got {max_pairs}")
    path = Path(traces)
    per_problem: dict[str, _Candidates] = {}
    counts = ExportCounts()
    for line in read_trace_lines(path):
        record, start = line.value, line.offset
        counts.read += 1
        if record.correct is None:
            counts.ungraded += 1
            continue
        length = sum(len(m.content) for m in record.messages if m.role == "assistant")
        candidates = per_problem.setdefault(record.problem_id, _Candidates())
        if pairing == "extremes" and record.correct:
            _keep(candidates.correct, (start, length), 1, "short")
        elif pairing == "extremes":
            _keep(candidates.wrong, (start, length), 1, "long")
        else:
            _keep(candidates.correct if record.correct else candidates.wrong, (start, length), max_pairs, "first")
    seen: set[bytes] = set()

    def lines() -> Iterator[bytes]:
        with path.open("rb") as file:
            def load(at: int) -> TraceRecord:
                file.seek(at)
                return record_decoder.decode(file.readline())

            for candidates in per_problem.values():
                if not candidates.correct or not candidates.wrong:
                    counts.all_incorrect += not candidates.correct
                    counts.all_correct += not candidates.wrong
                    continue
                counts.problems += 1
                correct = [load(at) for at, _ in candidates.correct]
                wrong = [load(at) for at, _ in candidates.wrong]
                pairs = [(c, w) for c in correct for w in wrong][:max_pairs]
                for chosen, rejected in pairs:
                    prompt = _plain(m for m in prompt_messages(chosen) if m.role != "system")
                    if format == "collapsed":
                        chosen_messages = _plain([_collapsed(chosen, thinking)], thinking)
                        rejected_messages = _plain([_collapsed(rejected, thinking)], thinking)
                    else:
                        chosen_messages = _plain(_rest(chosen), thinking)
                        rejected_messages = _plain(_rest(rejected), thinking)
                    line = _encoder.encode({"prompt": prompt, "chosen": chosen_messages, "rejected": rejected_messages})
                    digest = hashlib.blake2b(line, digest_size=16).digest()
                    if digest in seen:
                        counts.skipped += 1
                        continue
                    seen.add(digest)
                    yield line + b"\n"

    counts.written = write_lines_atomically(out, lines(), inputs=[path])
    return counts
