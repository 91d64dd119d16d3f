"""Prompt strategies: how the Prompter opens a trace and what it says between turns.

A :class:`PromptStrategy` is pure logic (no I/O): given the trace so far, it returns the next
user message and its kind. Two are built in:

* :class:`NudgeStrategy` ("nudge"): a system prompt variant drawn per trace, then a nudge
  drawn at random each turn ("next step?", "are you sure?" ...), and every ``final_every``
  turns a request to give a ``<final_answer>`` if confident. When the Verifier has
  critiqued the window, its critique is the next user message instead.
* :class:`VerifyStrategy` ("verify"): the model is critiqued by a proxy user rather than
  nudged: after each assistant turn the Verifier's critique becomes the next user message,
  with the final-answer request added every ``final_every`` turns.

Randomness is seeded by the trace id, so a rerun draws the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec

from open_strawberry.messages import ChatMessage, Critique, TraceState
from open_strawberry.prompting import prompts

__all__ = ["NudgeStrategy", "PromptStrategy", "VerifyStrategy", "create_strategy"]


@runtime_checkable
class PromptStrategy(Protocol):
    """Decides the user side of a trace. ``name`` is recorded in every trace."""

    @property
    def name(self) -> str: ...

    def verify_every(self, configured: int) -> int:
        """How often (in assistant turns) the Verifier should critique; 0 for never."""
        ...

    def start(self, state: TraceState) -> tuple[TraceState, str]:
        """The opening: the state with its system prompt and first user message, and its kind."""
        ...

    def next_message(self, state: TraceState, critique: Critique | None) -> tuple[ChatMessage, str]:
        """The next user message after the newest assistant turn, and its kind."""
        ...


def _rng(state: TraceState, salt: str) -> random.Random:
    return random.Random(f"{state.trace_id}:{salt}:{len(state.turns)}")


@dataclass(frozen=True)
class NudgeStrategy:
    final_every: int = 3
    name: str = "nudge"
    system_prompts: tuple[str, ...] = tuple(prompts.SYSTEM_PROMPTS)
    nudges: tuple[str, ...] = prompts.NUDGES

    def verify_every(self, configured: int) -> int:
        return configured

    def start(self, state: TraceState) -> tuple[TraceState, str]:
        return _open(state, self.system_prompts, self.name), "first"

    def next_message(self, state: TraceState, critique: Critique | None) -> tuple[ChatMessage, str]:
        turns = len(state.turns)
        if self.final_every > 0 and turns % self.final_every == 0:
            return ChatMessage(role="user", content=prompts.FINAL_ANSWER_REQUEST), "final_request"
        if critique is not None:
            return ChatMessage(role="user", content=prompts.CRITIQUE_FEEDBACK.format(critique=critique.text)), \
                "critique"
        return ChatMessage(role="user", content=_rng(state, "nudge").choice(self.nudges)), "nudge"


@dataclass(frozen=True)
class VerifyStrategy:
    final_every: int = 3
    name: str = "verify"
    system_prompts: tuple[str, ...] = tuple(prompts.SYSTEM_PROMPTS)

    def verify_every(self, configured: int) -> int:
        return 1

    def start(self, state: TraceState) -> tuple[TraceState, str]:
        return _open(state, self.system_prompts, self.name), "first"

    def next_message(self, state: TraceState, critique: Critique | None) -> tuple[ChatMessage, str]:
        final = self.final_every > 0 and len(state.turns) % self.final_every == 0
        if critique is None:  # the verifier had nothing to say (or was skipped): fall back to a nudge
            text = prompts.FINAL_ANSWER_REQUEST if final else prompts.NUDGES[0]
            return ChatMessage(role="user", content=text), "final_request" if final else "nudge"
        text = prompts.CRITIQUE_FEEDBACK.format(critique=critique.text)
        if final:
            text += "\n\n" + prompts.FINAL_ANSWER_REQUEST
        return ChatMessage(role="user", content=text), "critique"


def _open(state: TraceState, variants: tuple[str, ...], strategy: str) -> TraceState:
    """The state with a system prompt variant drawn for this trace and the problem as first message."""
    variant = _rng(state, "system").choice(variants)
    messages = (ChatMessage(role="system", content=prompts.SYSTEM_PROMPTS[variant]),
                ChatMessage(role="user", content=state.problem.prompt))
    return msgspec.structs.replace(state, system_prompt_variant=variant, messages=messages, strategy=strategy)


def create_strategy(name: str, *, final_every: int = 3) -> PromptStrategy:
    """A built-in strategy by name ("nudge" or "verify")."""
    if name == "nudge":
        return NudgeStrategy(final_every=final_every)
    if name == "verify":
        return VerifyStrategy(final_every=final_every)
    raise ValueError(f"unknown strategy {name!r}; choose 'nudge' or 'verify'")
