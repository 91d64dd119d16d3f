"""The graph checks refuse wirings that would lose or deadlock traces, naming the fault."""

from __future__ import annotations

import anyio
import pytest

from open_strawberry import (
    ActorSpec,
    DeadlockRiskError,
    GenerateRequest,
    GraphError,
    NextTurn,
    Verdict,
    open_actor_system,
)
from open_strawberry.runtime import Actor, build_graph
from tests.helpers import Echo, MemorySink, loop_specs, new_traces


def test_default_routes_follow_the_message_types() -> None:
    graph = build_graph(loop_specs(), max_traces=8)
    assert graph.entry == "prompter"
    assert graph.sink == "sink"
    assert graph.routes["looper"] == {NextTurn: "prompter", Verdict: "finisher"}
    assert graph.cycle_edges == {("prompter", "generator"), ("generator", "looper"), ("looper", "prompter")}


def test_a_cycle_buffer_smaller_than_max_traces_is_refused() -> None:
    with pytest.raises(DeadlockRiskError, match=r"inbox of 'generator' \(buffer 3\).*max_traces=8"):
        build_graph(loop_specs(generator_buffer=3), max_traces=8)


def test_small_buffers_outside_cycles_are_accepted() -> None:
    specs = loop_specs()
    specs[3] = ActorSpec("finisher", specs[3].actor, buffer=0)
    specs[4] = ActorSpec("sink", specs[4].actor, buffer=1)
    assert build_graph(specs, max_traces=64).buffers == {
        "prompter": 64, "generator": 64, "looper": 64, "finisher": 0, "sink": 1}


async def test_open_actor_system_refuses_a_deadlock_prone_graph_before_starting() -> None:
    sink = MemorySink()
    with pytest.raises(DeadlockRiskError):
        async with open_actor_system(loop_specs(sink=sink, generator_buffer=1), max_traces=4):
            pytest.fail("must not start")
    assert not sink.torn_down  # nothing was set up


async def test_the_refused_configuration_really_deadlocks() -> None:
    """Bypass the check: with a 1-slot channel on the cycle, the run stops making progress."""
    specs = loop_specs(turns=5, buffer=1)
    graph = build_graph(specs, max_traces=1)  # passes: buffers equal max_traces
    assert graph.buffers["generator"] == 1
    with pytest.raises(DeadlockRiskError):
        build_graph(specs, max_traces=32)
    from open_strawberry.runtime import graph as graph_module

    original = graph_module._cycle_edges
    graph_module._cycle_edges = lambda edges: set()  # type: ignore[assignment]
    try:
        with anyio.move_on_after(2) as scope:
            async with open_actor_system(specs, max_traces=32) as system:
                await system.feed(new_traces(200))
        assert scope.cancelled_caught, "expected the unchecked graph to deadlock"
        assert system.statistics().finished < 200
    finally:
        graph_module._cycle_edges = original


class Stray(Actor):
    inputs = (GenerateRequest,)
    outputs = (NextTurn,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s[:-1], r"exactly one sink"),
        (lambda s: s[1:], r"exactly one actor must accept NewTrace"),
        (lambda s: [*s, ActorSpec("sink", MemorySink())], r"two actors are named 'sink'"),
        (lambda s: [*s, ActorSpec("stray", Stray())], r"sends GenerateRequest, which 2 actors accept"),
        (lambda s: [*s[:1], ActorSpec("generator", Echo(), workers=0), *s[2:]], r"workers must be at least 1"),
        (lambda s: [ActorSpec("prompter", s[0].actor, routes={GenerateRequest: "nowhere"}), *s[1:]],
         r"routes GenerateRequest to unknown actor 'nowhere'"),
        (lambda s: [ActorSpec("prompter", s[0].actor, routes={GenerateRequest: "sink"}), *s[1:]],
         r"routes GenerateRequest to 'sink', which accepts only TraceRecord"),
        (lambda s: [ActorSpec("prompter", s[0].actor, routes={NextTurn: "prompter"}), *s[1:]],
         r"routes for types it does not send: NextTurn"),
    ],
)
def test_bad_wiring_is_refused_with_a_message_naming_the_fault(change, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GraphError, match=message):
        build_graph(change(loop_specs()), max_traces=4)


def test_an_actor_no_trace_reaches_is_refused() -> None:
    class Island(Actor):
        inputs = ()
        outputs = ()

    with pytest.raises(GraphError, match=r"ever reaches 'island'"):
        build_graph([*loop_specs(), ActorSpec("island", Island())], max_traces=4)


def test_max_traces_must_be_positive() -> None:
    with pytest.raises(GraphError, match="max_traces must be at least 1"):
        build_graph(loop_specs(), max_traces=0)
