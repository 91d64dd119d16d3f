"""open-strawberry: generate multi-turn reasoning traces with LLMs, as an async actor system.

The public API is what this module exports; everything else is an implementation detail.

Each name is imported from its module on first use (a module-level ``__getattr__``), so
``import open_strawberry`` is cheap: no SDK, HTTP client or logging library loads until
something needs it. The imports under ``TYPE_CHECKING`` say the same to type checkers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from open_strawberry._lazy import lazy_exports

if TYPE_CHECKING:
    from open_strawberry._version import __version__
    from open_strawberry.actors import Arbiter, ArbiterPolicy, Generator, GraderActor, JsonlSink, Prompter, Verifier
    from open_strawberry.backends import Backend, ChatRequest, create_backend, parse_model
    from open_strawberry.errors import (
        ActorCrashedError,
        AdmissionClosedError,
        BackendError,
        ConfigurationError,
        DeadlockRiskError,
        FatalBackendError,
        GraphError,
        InterruptedRunError,
        MissingAPIKeyError,
        ModelSpecError,
        OpenStrawberryError,
        RetryableBackendError,
    )
    from open_strawberry.events import EventStream
    from open_strawberry.grading import Grader, GradeResult
    from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, RetryPolicy
    from open_strawberry.log import configure_logging
    from open_strawberry.messages import (
        ChatMessage,
        Completion,
        Critique,
        CritiqueRequest,
        ErrorInfo,
        Generated,
        GenerateRequest,
            Message,
        NewTrace,
        NextTurn,
        Problem,
        Timings,
        TraceMessage,
        TraceRecord,
        TraceState,
        TurnRecord,
        Usage,
        Verdict,
    )
    from open_strawberry.mock import MockConfig, open_mock_server
    from open_strawberry.pipeline import GenerateConfig, RunSummary, generate
    from open_strawberry.problems.sources import ProblemSource
    from open_strawberry.prompting.strategies import PromptStrategy
    from open_strawberry.runtime import (
        Actor,
        ActorSpec,
        ActorStatistics,
        ActorSystem,
        Mailbox,
        Pipeline,
        RestartPolicy,
        SystemStatistics,
        WaitStatistics,
        open_actor_system,
    )

__all__ = [
    "Actor",
    "ActorCrashedError",
    "ActorSpec",
    "ActorStatistics",
    "ActorSystem",
    "AdmissionClosedError",
    "Arbiter",
    "ArbiterPolicy",
    "Backend",
    "BackendError",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "ConfigurationError",
    "Critique",
    "CritiqueRequest",
    "DeadlockRiskError",
    "ErrorInfo",
    "EventStream",
    "FatalBackendError",
    "GenerateConfig",
    "GenerateRequest",
    "Generated",
    "Generator",
    "GradeResult",
    "Grader",
    "GraderActor",
    "GraphError",
    "InterruptedRunError",
    "JsonlSink",
    "LimitedBackend",
    "Limiter",
    "LimiterConfig",
    "Mailbox",
    "Message",
    "MissingAPIKeyError",
    "MockConfig",
    "ModelSpecError",
    "NewTrace",
    "NextTurn",
    "OpenStrawberryError",
    "Pipeline",
    "Problem",
    "ProblemSource",
    "PromptStrategy",
    "Prompter",
    "RestartPolicy",
    "RetryPolicy",
    "RetryableBackendError",
    "RunSummary",
    "SystemStatistics",
    "Timings",
    "TraceMessage",
    "TraceRecord",
    "TraceState",
    "TurnRecord",
    "Usage",
    "Verdict",
    "Verifier",
    "WaitStatistics",
    "__version__",
    "configure_logging",
    "create_backend",
    "generate",
    "open_actor_system",
    "open_mock_server",
    "parse_model",
]

# {module: the public names it provides}; the imports under TYPE_CHECKING above, as data
_EXPORTS: dict[str, tuple[str, ...]] = {
    "open_strawberry._version": ("__version__",),
    "open_strawberry.actors": (
        "Arbiter", "ArbiterPolicy", "Generator", "GraderActor", "JsonlSink", "Prompter", "Verifier",
    ),
    "open_strawberry.backends": ("Backend", "ChatRequest", "create_backend", "parse_model"),
    "open_strawberry.errors": (
        "ActorCrashedError", "AdmissionClosedError", "BackendError", "ConfigurationError", "DeadlockRiskError",
        "FatalBackendError", "GraphError", "InterruptedRunError", "MissingAPIKeyError", "ModelSpecError",
        "OpenStrawberryError", "RetryableBackendError",
    ),
    "open_strawberry.events": ("EventStream",),
    "open_strawberry.grading": ("Grader", "GradeResult"),
    "open_strawberry.limiter": ("LimitedBackend", "Limiter", "LimiterConfig", "RetryPolicy"),
    "open_strawberry.log": ("configure_logging",),
    "open_strawberry.messages": (
        "ChatMessage", "Completion", "Critique", "CritiqueRequest", "ErrorInfo", "Generated", "GenerateRequest",
        "Message", "NewTrace", "NextTurn", "Problem", "Timings", "TraceMessage", "TraceRecord", "TraceState",
        "TurnRecord", "Usage", "Verdict",
    ),
    "open_strawberry.mock": ("MockConfig", "open_mock_server"),
    "open_strawberry.pipeline": ("GenerateConfig", "RunSummary", "generate"),
    "open_strawberry.problems.sources": ("ProblemSource",),
    "open_strawberry.prompting.strategies": ("PromptStrategy",),
    "open_strawberry.runtime": (
        "Actor", "ActorSpec", "ActorStatistics", "ActorSystem", "Mailbox", "Pipeline", "RestartPolicy",
        "SystemStatistics", "WaitStatistics", "open_actor_system",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
