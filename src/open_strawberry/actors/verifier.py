"""The Verifier: critiques a window of a trace's newest assistant turns with a (maybe
different, cheaper) model, and scores them."""

from __future__ import annotations

import re

from open_strawberry.actors.generator import call_seed
from open_strawberry.backends.base import Backend, ChatRequest
from open_strawberry.messages import ChatMessage, Critique, CritiqueRequest
from open_strawberry.prompting import prompts
from open_strawberry.runtime.actor import Actor

__all__ = ["Verifier", "parse_critique"]

_CRITIQUE = re.compile(r"<critique>(.*?)(?:</critique>|$)", re.DOTALL | re.IGNORECASE)
_SCORE = re.compile(r"<score>\s*([01](?:\.\d+)?|\.\d+)\s*</score>|score\s*[:=]\s*([01](?:\.\d+)?|\.\d+)",
                    re.IGNORECASE)


def parse_critique(text: str) -> tuple[float, str]:
    """(score in [0, 1], critique text) from a verifier's reply; a reply without a score
    counts as 0.5, one without tags is the critique as a whole."""
    found = _SCORE.findall(text)
    score = float(next(group for group in found[-1] if group)) if found else 0.5
    critique = _CRITIQUE.search(text)
    body = critique[1] if critique is not None else _SCORE.sub("", text)
    return min(1.0, max(0.0, score)), body.strip()


class Verifier(Actor):
    """Answers a CritiqueRequest with a Critique of the last ``window`` assistant turns.

    It reads the turns' answers; with ``show_thinking`` also a reasoning model's thinking,
    before each answer inside ``<thinking>`` tags (off by default: the critique then judges
    what a reader of the trace sees)."""

    inputs = (CritiqueRequest,)
    outputs = (Critique,)

    def __init__(self, backend: Backend, *, max_tokens: int = 512, temperature: float | None = 0.0,
                 seed: int = 0, show_thinking: bool = False) -> None:
        self.backend = backend
        self.show_thinking = show_thinking
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed

    async def handle(self, message: CritiqueRequest) -> Critique:
        state = message.state
        steps = [self._shown(m) for m in state.messages if m.role == "assistant"][-message.window:]
        shown = "\n\n".join(f"Step {i}:\n{step}" for i, step in enumerate(steps, start=1))
        request = ChatRequest(
            system=prompts.VERIFIER_SYSTEM,
            messages=(ChatMessage(role="user", content=prompts.VERIFIER_REQUEST.format(
                problem=state.problem.prompt, steps=shown)),),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=call_seed(self.seed, f"{state.trace_id}:{len(state.turns)}"),
        )
        completion = await self.backend.complete(request)
        score, text = parse_critique(completion.text)
        return Critique(state=state, score=score, text=text, usage=completion.usage)

    def _shown(self, turn: ChatMessage) -> str:
        if self.show_thinking and turn.reasoning_content:
            return f"<thinking>\n{turn.reasoning_content}\n</thinking>\n{turn.content}"
        return turn.content
