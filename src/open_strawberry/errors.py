"""The project's exception tree.

Every error the package raises on purpose derives from :class:`OpenStrawberryError`::

    OpenStrawberryError
    ├── ConfigurationError        bad options, files or actor graphs, found before any work
    │   ├── GraphError            actors whose messages do not fit together
    │   └── DeadlockRiskError     a cycle whose channels cannot hold every trace in flight
    ├── AdmissionClosedError      submit() after the input was closed or interrupted
    ├── ActorCrashedError         an actor's loop died more often than its restart limit
    └── InterruptedRunError       a second interrupt cancelled the run before it drained

Errors from libraries are translated where they enter the package, with
``raise Mapped(...) from exc``; cancellation is never caught and turned into one of these.
"""

from __future__ import annotations

__all__ = [
    "ActorCrashedError",
    "AdmissionClosedError",
    "ConfigurationError",
    "DeadlockRiskError",
    "GraphError",
    "InterruptedRunError",
    "OpenStrawberryError",
]


class OpenStrawberryError(Exception):
    """Root of every error raised by open-strawberry."""


class ConfigurationError(OpenStrawberryError):
    """Options, files or a composition of actors that cannot work; raised before any work."""


class GraphError(ConfigurationError):
    """The actors' inputs and outputs do not form a graph every trace can travel."""


class DeadlockRiskError(GraphError):
    """A channel on a cycle is smaller than ``max_traces``, so the cycle could deadlock."""


class AdmissionClosedError(OpenStrawberryError):
    """A trace was submitted after the system stopped admitting new ones."""


class ActorCrashedError(OpenStrawberryError):
    """An actor's loop died more times than its restart policy allows."""

    def __init__(self, actor: str, restarts: int, unfinished: int, cause: BaseException) -> None:
        self.actor = actor
        self.restarts = restarts
        self.unfinished = unfinished
        super().__init__(
            f"actor {actor!r} crashed {restarts} times and was not restarted again; "
            f"last error: {type(cause).__name__}: {cause}. "
            f"The run stopped; {unfinished} admitted trace(s) did not finish "
            "(records written so far are complete; rerun to resume)."
        )


class InterruptedRunError(OpenStrawberryError):
    """The run was cancelled by a second interrupt; unfinished traces were not written."""
