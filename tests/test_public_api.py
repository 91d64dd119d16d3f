"""The public surface is deliberate: a change to it must change this test too."""

from __future__ import annotations

import open_strawberry

PUBLIC_API = [
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



def test_the_public_api_is_what_we_meant_to_export() -> None:
    assert open_strawberry.__all__ == PUBLIC_API


def test_all_is_sorted_and_every_name_exists() -> None:
    assert open_strawberry.__all__ == sorted(open_strawberry.__all__)
    for name in open_strawberry.__all__:
        assert hasattr(open_strawberry, name), name


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("open_strawberry").joinpath("py.typed").is_file()
