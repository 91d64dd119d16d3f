"""How actors are wired: :class:`ActorSpec`, routing by message type, and the checks
that refuse a graph which could lose or deadlock traces.

The deadlock rule: a trace has exactly one message in flight, so at most ``max_traces``
messages exist at once. If every channel that lies on a cycle (for example Arbiter ->
Prompter -> Generator -> Arbiter) can buffer ``max_traces`` messages, a send into a
cycle never blocks forever, and channels outside cycles drain toward the sink, which
always makes progress. A smaller buffer on a cycle can fill up with every actor of the
cycle blocked sending to the next one, so :func:`build_graph` refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from open_strawberry.errors import DeadlockRiskError, GraphError
from open_strawberry.messages import NewTrace, TraceRecord
from open_strawberry.runtime.actor import Actor

__all__ = ["ActorSpec", "Graph", "build_graph"]


@dataclass(frozen=True)
class ActorSpec:
    """One actor of a system: the instance, its pool size, inbox size and routes.

    ``buffer`` is the inbox capacity (``None``: ``max_traces``, which is always safe).
    ``routes`` maps an output type to the name of the actor that receives it; types left
    out go to the one actor whose ``inputs`` accept them.
    """

    name: str
    actor: Actor
    workers: int = 1
    buffer: int | None = None
    routes: Mapping[type[Any], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    """A checked wiring: each actor's routes, the entry, the sink and the cycle edges."""

    specs: dict[str, ActorSpec]
    buffers: dict[str, int]
    routes: dict[str, dict[type[Any], str]]  # {actor: {output type: target actor}}
    entry: str
    sink: str
    cycle_edges: frozenset[tuple[str, str]]  # (sender, receiver) pairs that lie on a cycle


def build_graph(specs: Sequence[ActorSpec], *, max_traces: int) -> Graph:
    """Check ``specs`` and resolve their routes; raise :class:`GraphError` naming the fault."""
    if max_traces < 1:
        raise GraphError(f"max_traces must be at least 1, got {max_traces}")
    by_name: dict[str, ActorSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise GraphError(f"two actors are named {spec.name!r}")
        if spec.workers < 1:
            raise GraphError(f"actor {spec.name!r}: workers must be at least 1, got {spec.workers}")
        if spec.buffer is not None and spec.buffer < 0:
            raise GraphError(f"actor {spec.name!r}: buffer must not be negative, got {spec.buffer}")
        by_name[spec.name] = spec
    buffers = {name: max_traces if s.buffer is None else s.buffer for name, s in by_name.items()}

    sinks = [s.name for s in specs if TraceRecord in s.actor.inputs and not s.actor.outputs]
    if len(sinks) != 1:
        raise GraphError(
            f"a system needs exactly one sink (accepts TraceRecord, sends nothing); found {sinks or 'none'}"
        )
    entries = [s.name for s in specs if NewTrace in s.actor.inputs]
    if len(entries) != 1:
        raise GraphError(f"exactly one actor must accept NewTrace (the entry); found {entries or 'none'}")

    routes: dict[str, dict[type[Any], str]] = {}
    for spec in specs:
        resolved: dict[type[Any], str] = {}
        for out_type in spec.actor.outputs:
            target = spec.routes.get(out_type)
            if target is None:
                accepting = [s.name for s in specs if out_type in s.actor.inputs]
                if len(accepting) != 1:
                    raise GraphError(
                        f"actor {spec.name!r} sends {out_type.__name__}, which "
                        + (f"{len(accepting)} actors accept ({', '.join(accepting)}): "
                           "give it an explicit route" if accepting else "no actor accepts")
                    )
                target = accepting[0]
            elif target not in by_name:
                raise GraphError(f"actor {spec.name!r} routes {out_type.__name__} to unknown actor {target!r}")
            elif out_type not in by_name[target].actor.inputs:
                raise GraphError(
                    f"actor {spec.name!r} routes {out_type.__name__} to {target!r}, "
                    f"which accepts only {_names(by_name[target].actor.inputs)}"
                )
            resolved[out_type] = target
        unknown = set(spec.routes) - set(spec.actor.outputs)
        if unknown:
            raise GraphError(f"actor {spec.name!r} has routes for types it does not send: {_names(unknown)}")
        routes[spec.name] = resolved

    edges = {name: set(r.values()) for name, r in routes.items()}
    sink = sinks[0]
    _check_reachable(edges, entries[0], sink)
    cycle_edges = _cycle_edges(edges)
    for sender, receiver in sorted(cycle_edges):
        if buffers[receiver] < max_traces:
            raise DeadlockRiskError(
                f"the inbox of {receiver!r} (buffer {buffers[receiver]}) is on a cycle "
                f"({sender!r} -> {receiver!r}) and must hold max_traces={max_traces} messages, "
                "or the cycle can deadlock; raise its buffer or lower max_traces"
            )
    return Graph(by_name, buffers, routes, entries[0], sink, frozenset(cycle_edges))


def _names(types: Any) -> str:
    return ", ".join(sorted(t.__name__ for t in types)) or "nothing"


def _check_reachable(edges: dict[str, set[str]], entry: str, sink: str) -> None:
    reached = {entry}
    stack = [entry]
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                stack.append(nxt)
    unreached = sorted(set(edges) - reached)
    if unreached:
        raise GraphError(f"no message from the entry {entry!r} ever reaches {', '.join(map(repr, unreached))}")
    stuck = sorted(name for name in edges if name != sink and not _reaches(edges, name, sink))
    if stuck:
        raise GraphError(f"traces reaching {', '.join(map(repr, stuck))} can never reach the sink {sink!r}")


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in edges[node] - seen:
            seen.add(nxt)
            stack.append(nxt)
    return False


def _cycle_edges(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges whose receiver can reach back to their sender (self-loops included)."""
    return {(a, b) for a, targets in edges.items() for b in targets if _reaches(edges, b, a)}
