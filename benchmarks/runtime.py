"""Runtime benchmark: ring throughput against a bare anyio ring, and memory at 10,000 traces.

    python benchmarks/runtime.py [--messages N] [--tokens N] [--repeats N] [--json]

1. Ring: ``--tokens`` traces circulate through a ring of 5 actors until ``--messages``
   hops were made. The baseline, measured in the same process and run, is 5 bare tasks
   passing the same items over bounded anyio memory object streams. Reported: messages
   per second of each and their ratio (goal: the actor ring reaches at least 0.8 of bare).
   A worker of the runtime yields to the event loop once per message (when it receives),
   the bare ring twice (anyio's ``receive`` and ``send`` each yield); a third ring, bare
   with sends that do not yield, has the actor ring's yields, and the actor ring's share
   of it is what the runtime's own work (statistics, supervision, log context) costs.
   Rounds rotate which ring goes first and the best round of each counts, to damp noise.
2. Memory: in a fresh subprocess, 10,000 traces are admitted at once (``max_traces`` =
   10,000) into the pipeline's shape (prompter -> generator -> arbiter -> grader -> sink)
   with a no-op generator (1,000 workers) that sleeps 10 ms per call and answers 400
   characters; calls wait until all traces are admitted, and each trace runs 5 turns.
   Reported: peak in flight and peak RSS (goal: under 300 MB).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from open_strawberry import (
    Actor,
    ActorSpec,
    ChatMessage,
    Completion,
    Generated,
    GenerateRequest,
    NewTrace,
    Problem,
    TraceMessage,
    TraceRecord,
    TraceState,
    TurnRecord,
    open_actor_system,
)
from tests.helpers import Finisher, Looper, MemorySink, Prompter

RING = 5


class Hop(TraceMessage, frozen=True, kw_only=True):
    laps: int


class RingActor(Actor):
    inputs = (Hop,)
    outputs = (Hop, TraceRecord)

    def __init__(self, last: bool, laps: int) -> None:
        self.last = last
        self.laps = laps

    async def handle(self, message: NewTrace | Hop) -> Hop | TraceRecord:
        if isinstance(message, NewTrace):
            return Hop(state=message.state, laps=self.laps)
        if not self.last:
            return message
        if message.laps <= 1:
            return TraceRecord.from_state(message.state, status="final")
        return Hop(state=message.state, laps=message.laps - 1)


class RingEntry(RingActor):
    inputs = (NewTrace, Hop)


class CountingSink(Actor):
    inputs = (TraceRecord,)
    outputs = ()

    async def handle(self, message: TraceRecord) -> None:
        return None


def _state(i: int) -> TraceState:
    return TraceState(trace_id=f"t{i}", problem=Problem(id=f"p{i}", prompt="How many r's in strawberry?", answer="3"))


async def actor_ring(tokens: int, laps: int) -> float:
    specs = []
    for i in range(RING):
        routes: dict[type[Any], str] = {Hop: f"a{(i + 1) % RING}"}
        kind = RingEntry if i == 0 else RingActor
        specs.append(ActorSpec(f"a{i}", kind(last=i == RING - 1, laps=laps), routes=routes))
    specs.append(ActorSpec("sink", CountingSink()))
    traces = [NewTrace(state=_state(i)) for i in range(tokens)]
    started = time.perf_counter()
    async with open_actor_system(specs, max_traces=tokens) as system:
        await system.feed(traces)
    elapsed = time.perf_counter() - started
    # every trace: one hop into a0, laps * RING hops around, one hop to the sink
    hops = sum(a.handled for a in system.statistics().actors)
    assert hops == tokens * (laps * RING + 1), hops
    return hops / elapsed


async def send_at_once(stream: MemoryObjectSendStream[Any], item: Any) -> None:
    """``stream.send(item)`` without its yield to the event loop when the buffer has room."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def bare_ring(tokens: int, laps: int, *, yield_on_send: bool = True) -> float:
    """The same traffic over bare streams: 5 ring tasks and a sink task, no runtime.

    Each hop yields to the event loop twice, as anyio's ``receive`` and ``send`` do; with
    ``yield_on_send=False`` once (sends into a buffer with room do not yield, as the
    runtime's do): the same yields as the actor ring, so the difference is the runtime's own.
    """
    streams = [anyio.create_memory_object_stream[Any](tokens) for _ in range(RING + 1)]
    hops = 0

    async def stage(i: int) -> None:
        nonlocal hops
        receive, forward, done = streams[i][1], streams[(i + 1) % RING][0], streams[RING][0]
        send = MemoryObjectSendStream.send if yield_on_send else send_at_once
        async for item in receive:
            hops += 1
            if i == RING - 1:
                state, left = item
                if left <= 1:
                    await send(done, state)
                    continue
                item = (state, left - 1)
            await send(forward, item)

    async def sink(scope: anyio.CancelScope) -> None:
        nonlocal hops
        finished = 0
        async for _ in streams[RING][1]:
            hops += 1
            finished += 1
            if finished == tokens:
                scope.cancel()  # every token is home: stop the ring

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(RING):
            tg.start_soon(stage, i)
        tg.start_soon(sink, tg.cancel_scope)
        for i in range(tokens):
            hops += 1  # admission into the ring, as in the actor ring
            await streams[0][0].send((_state(i), laps))
    elapsed = time.perf_counter() - started
    for send, receive in streams:
        send.close()
        receive.close()
    return hops / elapsed


class NoopGenerator(Actor):
    """A stand-in for an LLM backend: waits 10 ms, answers 400 characters.

    Calls wait for ``gate`` first, so that every trace is admitted before any finishes.
    """

    inputs = (GenerateRequest,)
    outputs = (Generated,)
    TEXT = "Let me think about this one small step at a time. " * 8

    def __init__(self) -> None:
        self.gate = anyio.Event()

    async def handle(self, message: GenerateRequest) -> Generated:
        await self.gate.wait()
        await anyio.sleep(0.01)
        reply = ChatMessage(role="assistant", content=self.TEXT)
        state = message.state.with_turn(reply, TurnRecord(kind=message.kind))
        return Generated(state=state, completion=Completion(text=self.TEXT))


async def memory_run(traces: int) -> dict[str, Any]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    generator = NoopGenerator()
    specs = [
        ActorSpec("prompter", Prompter()),
        ActorSpec("generator", generator, workers=1000),
        ActorSpec("arbiter", Looper(turns=5)),
        ActorSpec("grader", Finisher(), buffer=64),
        ActorSpec("sink", CountingSinkKeepingNothing(), buffer=64),
    ]
    problem = "Crack the code: 682 one digit right and in place; 614 one digit right, wrong place. " * 3
    started = time.perf_counter()
    async with open_actor_system(specs, max_traces=traces) as system:
        await system.feed(NewTrace(state=TraceState(trace_id=f"t{i}", problem=Problem(
            id=f"p{i}", prompt=problem, answer="042"))) for i in range(traces))
        generator.gate.set()
    stats = system.statistics()
    return {
        "traces": traces,
        "peak_in_flight": stats.peak_in_flight,
        "finished": stats.finished,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_at_start_mb": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


class CountingSinkKeepingNothing(MemorySink):
    async def handle(self, message: TraceRecord) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000, help="hops per ring round (default 300,000)")
    parser.add_argument("--tokens", type=int, default=100, help="traces circulating at once (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each ring (default 3)")
    parser.add_argument("--traces", type=int, default=10_000, help="traces in flight for memory (default 10,000)")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    if args.memory_only:
        print(json.dumps(anyio.run(memory_run, args.traces)))
        return

    laps = max(1, args.messages // (args.tokens * RING))
    bare, bare_one_yield, actor = [], [], []
    for round_ in range(args.repeats):
        runs = [(bare, functools.partial(bare_ring, yield_on_send=True)),
                (bare_one_yield, functools.partial(bare_ring, yield_on_send=False)),
                (actor, actor_ring)]
        for results, ring in runs[round_ % 3:] + runs[:round_ % 3]:  # rotate which goes first
            results.append(anyio.run(ring, args.tokens, laps))
    memory = json.loads(subprocess.run(
        [sys.executable, __file__, "--memory-only", "--traces", str(args.traces)],
        check=True, capture_output=True, text=True).stdout)
    result = {
        "ring": {
            "actors": RING,
            "traces_circulating": args.tokens,
            "hops_per_round": args.tokens * (laps * RING + 1),
            "bare_msgs_per_s": round(max(bare)),
            "actor_msgs_per_s": round(max(actor)),
            "ratio": round(max(actor) / max(bare), 3),
            "goal_ratio": 0.8,
            "bare_one_yield_msgs_per_s": round(max(bare_one_yield)),
            "ratio_to_one_yield": round(max(actor) / max(bare_one_yield), 3),
            "rounds": {"bare": [round(x) for x in bare], "bare_one_yield": [round(x) for x in bare_one_yield],
                       "actor": [round(x) for x in actor]},
        },
        "memory": {**memory, "goal_peak_rss_mb": 300},
    }
    if args.json:
        print(json.dumps(result))
        return
    ring, mem = result["ring"], result["memory"]
    print(f"ring of {RING} actors, {args.tokens} traces circulating, best of {args.repeats} rounds:")
    print(f"  bare anyio ring : {ring['bare_msgs_per_s']:>10,} msg/s")
    print(f"  actor ring      : {ring['actor_msgs_per_s']:>10,} msg/s")
    print(f"  ratio           : {ring['ratio']:.3f}  (goal >= 0.8)")
    print(f"  bare ring, one yield per hop: {ring['bare_one_yield_msgs_per_s']:>10,} msg/s"
          f"  (actor ring: {ring['ratio_to_one_yield']:.3f} of it)")
    print(f"memory, {mem['traces']:,} traces admitted at once, 5 turns each on a no-op backend:")
    print(f"  peak in flight  : {mem['peak_in_flight']:,}   finished: {mem['finished']:,} in {mem['seconds']} s")
    print(f"  peak RSS        : {mem['peak_rss_mb']} MB (interpreter and imports: {mem['rss_at_start_mb']} MB)"
          "  (goal < 300 MB)")
    print(msgspec.json.encode(result).decode())


if __name__ == "__main__":
    main()
