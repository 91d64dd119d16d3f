"""The standard graph of a ``generate`` run, built from its config::

    problems ─► Prompter ─► Generator (pool) ─► Arbiter ─► Grader ─► Sink (JSONL)
                   ▲                              │  ▲
                   └───────── next turn ──────────┘  └──► Verifier (pool) ──┘
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from open_strawberry.actors import Arbiter, ArbiterPolicy, Generator, GraderActor, JsonlSink, Prompter, Verifier
from open_strawberry.backends.base import Backend
from open_strawberry.events import EventStream
from open_strawberry.grading import Grader
from open_strawberry.messages import TraceRecord
from open_strawberry.pipeline.config import GenerateConfig
from open_strawberry.prompting import PromptStrategy
from open_strawberry.runtime import ActorSpec, Pipeline

__all__ = ["standard_pipeline"]


def standard_pipeline(config: GenerateConfig, *, main: Backend, critic: Backend, grader: Grader,
                      strategy: PromptStrategy, verify_every: int, events: EventStream | None,
                      observers: Sequence[Callable[[TraceRecord], None]]) -> Pipeline:
    """The actors of a run, wired to what the caller opened (and will close): the backends of
    the model and the critic, and the default grader. The Verifier is left out when nothing
    asks for critiques."""
    workers = max(1, min(config.max_traces, config.max_concurrency or 256))
    policy = ArbiterPolicy(max_turns=config.max_turns, max_trace_tokens=config.max_trace_tokens,
                           verify_every=verify_every, verify_window=config.verify_window, veto_below=config.veto_below,
                           last_call=config.last_call)
    specs = [
        ActorSpec("prompter", Prompter(strategy), workers=2),
        ActorSpec("generator", Generator(main, temperature=config.sampling_temperature, max_tokens=config.max_tokens,
                                         seed=config.seed, events=events, reasoning_effort=config.reasoning_effort,
                                         thinking_budget=config.thinking_budget,
                                         reasoning_history=config.reasoning_history), workers=workers),
        ActorSpec("arbiter", Arbiter(policy), workers=2),
        ActorSpec("grader", GraderActor(grader, fallback=config.answer_fallback)),
        ActorSpec("sink", JsonlSink(config.out, observers=list(observers))),
    ]
    if verify_every:
        specs.append(ActorSpec("verifier", Verifier(critic, seed=config.seed, show_thinking=config.verifier_thinking),
                               workers=workers))
    return Pipeline(specs)
