"""The Arbiter: reads each new turn (and critique) and decides whether the trace goes on,
ends with a final answer, or stops; it owns the termination policy and records why."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from open_strawberry.grading.answers import without_thinking
from open_strawberry.messages import Critique, CritiqueRequest, Generated, NextTurn, TraceState, Verdict
from open_strawberry.runtime.actor import Actor

__all__ = ["Arbiter", "ArbiterPolicy", "extract_final_answer"]

_OPEN = re.compile(r"<\s*final_answer\s*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*final_answer\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^(?:\*\*|__|`+|\s)+|(?:\*\*|__|`+|\s)+$")


def extract_final_answer(text: str) -> str | None:
    """The answer in the last ``<final_answer>`` tag of ``text``, tolerantly: a missing
    closing tag runs to the end, surrounding whitespace and markdown are dropped; ``None``
    when there is no tag or it is empty. ``text`` is a reply's answer: thinking is never read
    (thinking left inline, ``<think>…</think>``, is skipped)."""
    text = without_thinking(text)
    opens = list(_OPEN.finditer(text))
    if not opens:
        return None
    rest = text[opens[-1].end():]
    close = _CLOSE.search(rest)
    answer = _FENCE.sub("", rest[: close.start()] if close else rest).strip()
    return answer or None


@dataclass(frozen=True)
class ArbiterPolicy:
    """When a trace stops.

    ``verify_every``: critique the window every that many turns (0: never); ``veto_below``:
    with a verifier, a final answer whose critique scores below this is sent back for more
    work (``None``: final answers are never vetoed). ``last_call``: a trace that reaches
    ``max_turns`` without a final answer is asked once more, for the answer alone (one turn
    past ``max_turns``, of kind ``last_call``), so that weak models' traces can be graded.
    """

    max_turns: int = 12
    max_trace_tokens: int | None = None
    verify_every: int = 0
    verify_window: int = 3
    veto_below: float | None = 0.5
    last_call: bool = False


class Arbiter(Actor):
    """Decides after each turn. Without a verifier (``verify_every`` 0) it never sends a
    CritiqueRequest, and says so in its ``outputs``, so no Verifier is needed in the graph."""

    inputs = (Generated, Critique)
    outputs: tuple[type[Any], ...] = (NextTurn, Verdict, CritiqueRequest)

    def __init__(self, policy: ArbiterPolicy) -> None:
        self.policy = policy
        if policy.verify_every <= 0:
            self.outputs = (NextTurn, Verdict)

    @property
    def vetoes(self) -> bool:
        return self.policy.verify_every > 0 and self.policy.veto_below is not None

    async def handle(self, message: Generated | Critique) -> NextTurn | Verdict | CritiqueRequest:
        if isinstance(message, Critique):
            return self._after_critique(message)
        state = message.state
        answer = extract_final_answer(message.completion.text)
        if answer is not None:
            if self.vetoes:
                return CritiqueRequest(state=state, window=self.policy.verify_window)
            return Verdict(state=state, status="final", final_answer=answer, reason="final answer given")
        if (stop := self._stop(state)) is not None:
            return stop
        every = self.policy.verify_every
        if every > 0 and len(state.turns) % every == 0:
            return CritiqueRequest(state=state, window=self.policy.verify_window)
        return NextTurn(state=state, reason="no final answer yet")

    def _after_critique(self, critique: Critique) -> NextTurn | Verdict:
        state = _scored(critique)
        critique = msgspec.structs.replace(critique, state=state)
        last = next((m.content for m in reversed(state.messages) if m.role == "assistant"), "")
        answer = extract_final_answer(last)
        if answer is not None:
            threshold = self.policy.veto_below
            if threshold is None or critique.score >= threshold:
                return Verdict(state=state, status="final", final_answer=answer,
                               reason=f"final answer given; verifier score {critique.score:.2f}")
            if (stop := self._stop(state)) is not None:
                return msgspec.structs.replace(stop, reason=f"{stop.reason}; the last final answer was vetoed")
            return NextTurn(state=state, critique=critique,
                            reason=f"verifier vetoed the final answer (score {critique.score:.2f} < {threshold})")
        if (stop := self._stop(state)) is not None:
            return stop
        return NextTurn(state=state, critique=critique, reason="verifier critique")

    def _stop(self, state: TraceState) -> Verdict | NextTurn | None:
        turns = len(state.turns)
        if turns >= self.policy.max_turns:
            if self.policy.last_call and state.turns and state.turns[-1].kind != "last_call":
                return NextTurn(state=state, last_call=True,
                                reason=f"reached {self.policy.max_turns} turns: a last call for the answer")
            return Verdict(state=state, status="max_turns", reason=f"reached {self.policy.max_turns} turns")
        budget = self.policy.max_trace_tokens
        if budget is not None and state.usage.total_tokens >= budget:
            return Verdict(state=state, status="budget",
                           reason=f"used {state.usage.total_tokens} tokens of a {budget}-token budget")
        return None


def _scored(critique: Critique) -> TraceState:
    """The state with the critique's score on its newest turn and its tokens in the total."""
    state = critique.state
    turns = state.turns
    if turns:
        turns = (*turns[:-1], msgspec.structs.replace(turns[-1], verifier_score=critique.score))
    return msgspec.structs.replace(state, turns=turns, usage=state.usage + critique.usage)
