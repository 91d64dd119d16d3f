"""A custom PromptStrategy: a Socratic tutor that asks a guiding question each turn.

    python examples/custom_strategy.py [OUT_DIR]

A strategy decides the user side of a trace: how it opens, and what to say after each turn.
It is pure logic; the Prompter actor calls it. Put it in the graph by replacing the Prompter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import msgspec

from open_strawberry import ChatMessage, Critique, Pipeline, TraceState, generate
from open_strawberry.actors import Prompter
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.prompting.prompts import FINAL_ANSWER_REQUEST

QUESTIONS = (
    "What do you know for certain so far?",
    "What is the next fact you could establish?",
    "Which of your steps would you check first, and why?",
)


class SocraticStrategy:
    name = "socratic"

    def __init__(self, final_every: int = 3) -> None:
        self.final_every = final_every

    def verify_every(self, configured: int) -> int:
        return configured

    def start(self, state: TraceState) -> tuple[TraceState, str]:
        messages = (ChatMessage(role="system", content="You are a student; answer your tutor one step at a time."),
                    ChatMessage(role="user", content=state.problem.prompt))
        return msgspec.structs.replace(state, messages=messages, strategy=self.name,
                                       system_prompt_variant="socratic-student"), "first"

    def next_message(self, state: TraceState, critique: Critique | None) -> tuple[ChatMessage, str]:
        turns = len(state.turns)
        if turns % self.final_every == 0:
            return ChatMessage(role="user", content=FINAL_ANSWER_REQUEST), "final_request"
        return ChatMessage(role="user", content=QUESTIONS[turns % len(QUESTIONS)]), "question"


async def main(out_dir: Path) -> None:
    def socratic(pipeline: Pipeline) -> Pipeline:
        return pipeline.replace("prompter", Prompter(SocraticStrategy()))

    async with open_mock_server(MockConfig(confident_after=2)) as server:
        summary = await generate(problems="builtin:arithmetic:8", model=f"mock:reasoner@{server.openai_base_url}",
                                 out=str(out_dir / "traces.jsonl"), customize=socratic)
    print(f"{summary.written} Socratic traces, pass rate {summary.pass_rate:.0%}")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/custom_strategy"))
