"""The Prompter: builds each user message of a trace from its PromptStrategy. No I/O."""

from __future__ import annotations

from open_strawberry.messages import ChatMessage, GenerateRequest, NewTrace, NextTurn
from open_strawberry.prompting import prompts
from open_strawberry.prompting.strategies import PromptStrategy
from open_strawberry.runtime.actor import Actor

__all__ = ["Prompter"]


class Prompter(Actor):
    """Opens new traces (system prompt and problem) and writes the next user message after
    each turn the Arbiter lets go on (a nudge, a final-answer request, or a critique), and the
    last call for an answer when the Arbiter asks for one (turn kind ``last_call``)."""

    inputs = (NewTrace, NextTurn)
    outputs = (GenerateRequest,)

    def __init__(self, strategy: PromptStrategy) -> None:
        self.strategy = strategy

    async def handle(self, message: NewTrace | NextTurn) -> GenerateRequest:
        if isinstance(message, NewTrace):
            state, kind = self.strategy.start(message.state)
            return GenerateRequest(state=state, kind=kind)
        if message.last_call:  # the same for every strategy: the turn budget is spent
            return GenerateRequest(state=message.state.with_message(
                ChatMessage(role="user", content=prompts.LAST_CALL_REQUEST)), kind="last_call")
        user, kind = self.strategy.next_message(message.state, message.critique)
        return GenerateRequest(state=message.state.with_message(user), kind=kind)
