"""``open-strawberry demo``: the actor runtime at work on a toy reasoning task, offline.

Until the LLM pipeline lands, the demo runs the standard graph shape with toy actors:
a Prompter nudges, a rule-based "reasoner" counts one letter of a word per turn (and
slips now and then, seeded), an Arbiter finalises when a ``<final_answer>`` appears, a
Grader compares it with the truth, and the JSONL Sink writes every trace.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path

import anyio
import msgspec

from open_strawberry.actors.sink import JsonlSink
from open_strawberry.messages import (
    ChatMessage,
    Completion,
    Generated,
    GenerateRequest,
    NewTrace,
    NextTurn,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    Verdict,
    record_decoder,
)
from open_strawberry.runtime import Actor, ActorSpec, open_actor_system

__all__ = ["letter_problems", "run_demo"]

_WORDS = ("strawberry", "raspberry", "mississippi", "bookkeeper", "committee", "banana",
          "parallel", "assessment", "successful", "occurrence", "referrer", "letter")
_FINAL = re.compile(r"<final_answer>\s*(.*?)\s*</final_answer>", re.DOTALL)


def letter_problems(count: int, seed: int) -> list[Problem]:
    """``count`` letter-counting problems ("how many r's are in strawberry?")."""
    rng = random.Random(seed)
    problems = []
    for i in range(count):
        word = rng.choice(_WORDS)
        letter = rng.choice(sorted(set(word)))
        problems.append(Problem(id=f"letters-{i}", prompt=f"How many '{letter}'s are in '{word}'?",
                                answer=str(word.count(letter)), meta={"word": word, "letter": letter}))
    return problems


class ToyPrompter(Actor):
    inputs = (NewTrace, NextTurn)
    outputs = (GenerateRequest,)

    async def handle(self, message: NewTrace | NextTurn) -> GenerateRequest:
        first = isinstance(message, NewTrace)
        text = message.state.problem.prompt if first else "Next step? Give <final_answer> once you are sure."
        state = message.state.with_message(ChatMessage(role="user", content=text))
        return GenerateRequest(state=state, kind="first" if first else "nudge")


class ToyReasoner(Actor):
    """Counts one letter per turn; with probability ``slip`` it miscounts a step."""

    inputs = (GenerateRequest,)
    outputs = (Generated,)

    def __init__(self, slip: float, seed: int) -> None:
        self._slip = slip
        self._seed = seed

    async def handle(self, message: GenerateRequest) -> Generated:
        state = message.state
        word, letter = state.problem.meta["word"], state.problem.meta["letter"]
        step = len(state.turns)
        rng = random.Random(f"{self._seed}:{state.trace_id}:{step}")
        count = int(state.turns[-1].kind.split(":")[1]) if step else 0
        if step < len(word):
            hit = word[step] == letter
            if rng.random() < self._slip:
                hit = not hit
            count += hit
            text = f"Step {step + 1}: letter {step + 1} is '{word[step]}'; count of '{letter}' so far: {count}."
        else:
            text = f"I checked every letter. <final_answer>{count}</final_answer>"
        reply = ChatMessage(role="assistant", content=text)
        completion = Completion(text=text, finish_reason="stop")
        turn = TurnRecord(kind=f"count:{count}", finish_reason="stop")
        return Generated(state=state.with_turn(reply, turn), completion=completion)


class ToyArbiter(Actor):
    inputs = (Generated,)
    outputs = (NextTurn, Verdict)

    def __init__(self, max_turns: int) -> None:
        self._max_turns = max_turns

    async def handle(self, message: Generated) -> NextTurn | Verdict:
        found = _FINAL.findall(message.completion.text)
        if found:
            return Verdict(state=message.state, status="final", final_answer=found[-1], reason="final answer")
        if len(message.state.turns) >= self._max_turns:
            return Verdict(state=message.state, status="max_turns", reason=f"{self._max_turns} turns")
        return NextTurn(state=message.state, reason="no final answer yet")


class ToyGrader(Actor):
    inputs = (Verdict,)
    outputs = (TraceRecord,)

    async def handle(self, message: Verdict) -> TraceRecord:
        answer = message.final_answer
        correct = None if answer is None else answer.strip() == message.state.problem.answer
        return TraceRecord.from_state(message.state, status=message.status, final_answer=answer,
                                      correct=correct, stop_reason=message.reason)


async def run_demo(out: Path, *, problems: int = 200, samples: int = 4, max_traces: int = 64,
                   seed: int = 0, handle_signals: bool = False) -> dict[str, float | bool]:
    """Run the toy pipeline and return a summary of what it wrote to ``out``."""
    await anyio.Path(out).unlink(missing_ok=True)
    specs = [
        ActorSpec("prompter", ToyPrompter()),
        ActorSpec("generator", ToyReasoner(slip=0.03, seed=seed), workers=8),
        ActorSpec("arbiter", ToyArbiter(max_turns=16)),
        ActorSpec("grader", ToyGrader(), buffer=8),
        ActorSpec("sink", JsonlSink(out), buffer=8),
    ]
    started = time.perf_counter()

    def traces() -> list[NewTrace]:
        return [NewTrace(state=TraceState(trace_id=uuid.uuid4().hex, problem=p, sample=s, model="toy",
                                          strategy="nudge"))
                for p in letter_problems(problems, seed) for s in range(samples)]

    async with open_actor_system(specs, max_traces=max_traces, handle_signals=handle_signals) as system:
        await system.feed(traces())
    elapsed = time.perf_counter() - started
    records = [record_decoder.decode(line) for line in (await anyio.Path(out).read_bytes()).splitlines()]
    stats = system.statistics()
    turns = sum(len(r.turns) for r in records)
    return {
        "traces": len(records),
        "correct": sum(1 for r in records if r.correct),
        "turns": turns,
        "seconds": elapsed,
        "turns_per_s": turns / elapsed if elapsed else 0.0,
        "peak_in_flight": stats.peak_in_flight,
        "failed": stats.failed,
        "interrupted": stats.interrupts > 0,
    }


def summary_json(summary: dict[str, float | bool]) -> str:
    return msgspec.json.format(msgspec.json.encode(summary).decode(), indent=2)
