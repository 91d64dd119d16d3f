"""A custom actor inserted into the standard graph: a Summarizer that keeps long histories short.

    python examples/custom_actor.py [OUT_DIR]

It sits between the Prompter and the Generator. Once a conversation is long, it replaces
each older assistant turn by its first sentence, so the model reads a compact history (and
the trace records what the model read). ``insert_before`` re-routes to it everything that
went to the Generator, and sends what it returns on to the Generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import msgspec

from open_strawberry import ActorSpec, ChatMessage, GenerateRequest, Pipeline, generate
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.runtime import Actor


class Summarizer(Actor):
    inputs = (GenerateRequest,)
    outputs = (GenerateRequest,)

    def __init__(self, keep_last: int = 4) -> None:
        self.keep_last = keep_last  # messages kept whole at the end of the conversation
        self.shortened = 0

    async def handle(self, message: GenerateRequest) -> GenerateRequest:
        messages = message.state.messages
        if len(messages) <= self.keep_last + 2:
            return message
        head, old, recent = messages[:2], messages[2:-self.keep_last], messages[-self.keep_last:]
        brief = tuple(ChatMessage(role=m.role, content=m.content.split(". ")[0].rstrip(".") + ".")
                      if m.role == "assistant" else m for m in old)
        self.shortened += 1
        state = msgspec.structs.replace(message.state, messages=(*head, *brief, *recent))
        return msgspec.structs.replace(message, state=state)


async def main(out_dir: Path) -> None:
    summarizer = Summarizer()

    def add_summarizer(pipeline: Pipeline) -> Pipeline:
        return pipeline.insert_before("generator", ActorSpec("summarizer", summarizer, workers=2))

    async with open_mock_server(MockConfig(confident_after=5)) as server:
        summary = await generate(problems="builtin:letters:10", model=f"mock:reasoner@{server.openai_base_url}",
                                 out=str(out_dir / "traces.jsonl"), samples=2, customize=add_summarizer)
    print(f"{summary.written} traces; the summarizer shortened {summarizer.shortened} requests")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/custom_actor"))
