"""The actor runtime: actors, mailboxes, graph checks, the system and its statistics."""

from open_strawberry.runtime.actor import Actor, Mailbox
from open_strawberry.runtime.composition import Pipeline
from open_strawberry.runtime.graph import ActorSpec, Graph, build_graph
from open_strawberry.runtime.statistics import ActorStatistics, SystemStatistics, WaitStatistics
from open_strawberry.runtime.system import ActorSystem, RestartPolicy, open_actor_system

__all__ = [
    "Actor",
    "ActorSpec",
    "ActorStatistics",
    "ActorSystem",
    "Graph",
    "Mailbox",
    "Pipeline",
    "RestartPolicy",
    "SystemStatistics",
    "WaitStatistics",
    "build_graph",
    "open_actor_system",
]
