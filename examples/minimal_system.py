"""The smallest complete actor system: three actors and the JSONL sink.

Each trace asks "what is A + B?"; the Solver answers in one turn, the Checker grades the
answer and ends the trace, and the sink writes one line per trace.

    python examples/minimal_system.py [OUT.jsonl]
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from open_strawberry import (
    Actor,
    ActorSpec,
    ChatMessage,
    Completion,
    Generated,
    GenerateRequest,
    JsonlSink,
    NewTrace,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    open_actor_system,
)


class Asker(Actor):
    """Turns a new trace into the first user message."""

    inputs = (NewTrace,)
    outputs = (GenerateRequest,)

    async def handle(self, message: NewTrace) -> GenerateRequest:
        user = ChatMessage(role="user", content=message.state.problem.prompt)
        return GenerateRequest(state=message.state.with_message(user), kind="first")


class Solver(Actor):
    """Stands in for an LLM: adds the two numbers of the question."""

    inputs = (GenerateRequest,)
    outputs = (Generated,)

    async def handle(self, message: GenerateRequest) -> Generated:
        a, b = message.state.problem.meta["terms"]
        text = f"{a} + {b} = {a + b}. <final_answer>{a + b}</final_answer>"
        state = message.state.with_turn(ChatMessage(role="assistant", content=text), TurnRecord(kind=message.kind))
        return Generated(state=state, completion=Completion(text=text))


class Checker(Actor):
    """Grades the answer and ends the trace with its record."""

    inputs = (Generated,)
    outputs = (TraceRecord,)

    async def handle(self, message: Generated) -> TraceRecord:
        answer = message.completion.text.split("<final_answer>")[-1].split("</final_answer>")[0]
        return TraceRecord.from_state(message.state, status="final", final_answer=answer,
                                      correct=answer == message.state.problem.answer)


async def main(out: Path) -> None:
    specs = [
        ActorSpec("asker", Asker()),
        ActorSpec("solver", Solver(), workers=4),
        ActorSpec("checker", Checker()),
        ActorSpec("sink", JsonlSink(out)),
    ]
    problems = [Problem(id=f"add-{a}-{b}", prompt=f"What is {a} + {b}?", answer=str(a + b), meta={"terms": [a, b]})
                for a in range(10) for b in range(10)]
    async with open_actor_system(specs, max_traces=16) as system:
        await system.feed(NewTrace(state=TraceState(trace_id=p.id, problem=p)) for p in problems)
    stats = system.statistics()
    print(f"{stats.finished} traces written to {out}; solver handled {stats.actor('solver').handled} requests")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/minimal-traces.jsonl"))
