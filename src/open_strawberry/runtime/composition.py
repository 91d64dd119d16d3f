"""A :class:`Pipeline`: an editable graph of actors, checked before it runs.

Start from the standard graph (``generate(..., customize=...)`` hands it to you) or from
your own specs, then replace an actor, insert one between two others, or change pool sizes
and buffers. Routes follow the message types; inserting an actor in front of another
re-routes to it everything that went to the other::

    pipeline.insert_before("generator", ActorSpec("summarizer", Summarizer()))
    pipeline.replace("grader", MyGrader())
    pipeline.configure("generator", workers=64)

:meth:`Pipeline.check` (and opening it) refuses, with a message naming the actor and the
message type, a graph whose types do not fit or whose buffers could deadlock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from open_strawberry.errors import GraphError
from open_strawberry.runtime.actor import Actor
from open_strawberry.runtime.graph import ActorSpec, Graph, build_graph
from open_strawberry.runtime.system import ActorSystem, RestartPolicy, open_actor_system

__all__ = ["Pipeline"]


class Pipeline:
    """Actor specs by name, in order. Every edit returns the pipeline, so edits chain."""

    def __init__(self, specs: Iterable[ActorSpec]) -> None:
        self._specs: dict[str, ActorSpec] = {}
        for spec in specs:
            self.add(spec)

    @property
    def specs(self) -> list[ActorSpec]:
        return list(self._specs.values())

    def __getitem__(self, name: str) -> ActorSpec:
        return self._spec(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def _spec(self, name: str) -> ActorSpec:
        if name not in self._specs:
            raise GraphError(f"no actor named {name!r}; the pipeline has {', '.join(self._specs)}")
        return self._specs[name]

    def add(self, spec: ActorSpec) -> Pipeline:
        if spec.name in self._specs:
            raise GraphError(f"the pipeline already has an actor named {spec.name!r}")
        self._specs[spec.name] = spec
        return self

    def remove(self, name: str) -> Pipeline:
        self._spec(name)
        del self._specs[name]
        return self

    def replace(self, name: str, actor: Actor) -> Pipeline:
        """Put ``actor`` in the place of the actor called ``name`` (same pool size and buffer)."""
        self._specs[name] = dataclasses.replace(self._spec(name), actor=actor)
        return self

    def configure(self, name: str, *, workers: int | None = None, buffer: int | None = None) -> Pipeline:
        """Change an actor's pool size or inbox capacity."""
        changes: dict[str, Any] = {}
        if workers is not None:
            changes["workers"] = workers
        if buffer is not None:
            changes["buffer"] = buffer
        self._specs[name] = dataclasses.replace(self._spec(name), **changes)
        return self

    def insert_before(self, target: str, spec: ActorSpec) -> Pipeline:
        """Add ``spec`` so that every message that went to ``target`` goes to it instead, and
        what it sends of the types ``target`` accepts goes on to ``target``."""
        routes = self._routes()
        self.add(spec)
        for sender, sent in routes.items():
            redirected = {kind: spec.name for kind, to in sent.items() if to == target}
            if redirected and sender != spec.name:
                old = self._specs[sender]
                self._specs[sender] = dataclasses.replace(old, routes={**old.routes, **redirected})
        onward = {kind: target for kind in spec.actor.outputs
                  if kind in self._spec(target).actor.inputs and kind not in spec.routes}
        self._specs[spec.name] = dataclasses.replace(spec, routes={**onward, **spec.routes})
        return self

    def _routes(self) -> dict[str, dict[type[Any], str]]:
        """The routes as they resolve now (buffers are not checked here)."""
        largest = max((s.buffer for s in self._specs.values() if s.buffer), default=1)
        return build_graph(self.specs, max_traces=max(1, largest)).routes

    def check(self, *, max_traces: int) -> Graph:
        """The resolved graph; raises GraphError (or DeadlockRiskError) naming what is wrong."""
        return build_graph(self.specs, max_traces=max_traces)

    @asynccontextmanager
    async def open(self, *, max_traces: int, restart: RestartPolicy | None = None,
                   handle_signals: bool = False) -> AsyncIterator[ActorSystem]:
        """Run the pipeline: :func:`~open_strawberry.runtime.open_actor_system` on its specs."""
        async with open_actor_system(self.specs, max_traces=max_traces, restart=restart,
                                     handle_signals=handle_signals) as system:
            yield system
