"""``generate``: the product's main job, as a function of a :class:`GenerateConfig`.

It checks the options, the problems file and the model servers (before any file is touched),
claims the traces file (:func:`~open_strawberry.pipeline.preflight.claim_run`: the lock,
resume from the finished ``(problem_id, sample)`` pairs, the manifest), builds the standard
graph::

    problems ─► Prompter ─► Generator (pool) ─► Arbiter ─► Grader ─► Sink (JSONL)
                   ▲                              │  ▲
                   └───────── next turn ──────────┘  └──► Verifier (pool) ──┘

and streams the problems through it, reporting progress to an optional callback.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio
import msgspec
import structlog

from open_strawberry.actors import Generator
from open_strawberry.backends.base import Backend
from open_strawberry.backends.batch import BATCH_PROVIDERS, BatchBackend, BatchStatistics, create_batch_backend
from open_strawberry.backends.batch_journal import BatchJournal, journal_path
from open_strawberry.backends.capacity import ServerCapacity, probe_capacity
from open_strawberry.backends.models import api_key_for, parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream, TraceFinished
from open_strawberry.grading import Grader, open_grader
from open_strawberry.limiter import (
    LimitedBackend,
    Limiter,
    LimiterConfig,
    LimiterStatistics,
    RetryPolicy,
    create_limited_backend,
)
from open_strawberry.limiter.statistics import wait_reason
from open_strawberry.messages import NewTrace, Problem, TraceRecord, TraceState
from open_strawberry.pipeline.config import GenerateConfig
from open_strawberry.pipeline.preflight import RunClaim, claim_run, pairs_to_make
from open_strawberry.pipeline.servers import check_reachable, open_model_servers
from open_strawberry.pipeline.standard import standard_pipeline
from open_strawberry.pipeline.summary import Progress, RunSummary, Tally
from open_strawberry.problems.builtin import BUILTIN_SETS, builtin_problems
from open_strawberry.problems.sources import FieldMap, open_problem_source
from open_strawberry.prompting import PromptStrategy, create_strategy
from open_strawberry.redact import redact
from open_strawberry.runtime import ActorSystem, Pipeline
from open_strawberry.traces.files import manifest_path
from open_strawberry.traces.tally import Prices

__all__ = ["check_reachable", "generate", "problem_source"]

_log = structlog.get_logger("open_strawberry.generate")


def _trace_id(seed: int, problem_id: str, sample: int) -> str:
    return hashlib.blake2b(f"{seed}\0{problem_id}\0{sample}".encode(), digest_size=8).hexdigest()


def problem_source(config: GenerateConfig) -> tuple[int, Callable[[], Iterator[Problem]]]:
    """(how many problems, a function that streams them) for ``config.problems``, the whole
    file checked before it returns (ConfigurationError naming the file, line and field)."""
    spec = config.problems
    if spec.startswith("builtin:"):
        _, name, *rest = spec.split(":")
        if name not in BUILTIN_SETS or len(rest) > 1 or (rest and not rest[0].isdigit()):
            raise ConfigurationError(f"problems {spec!r}: use builtin:NAME[:COUNT] with NAME one of "
                                     f"{', '.join(BUILTIN_SETS)}")
        count = int(rest[0]) if rest else 100
        return count, lambda: builtin_problems(name, count, config.seed)
    fields = FieldMap(id=config.id_field, prompt=config.prompt_field, answer=config.answer_field)
    source = open_problem_source(spec, format=config.problems_format, fields=fields, split=config.split)
    count = source.check()
    return count, lambda: iter(source)


def _key_env_for(model: str, config: GenerateConfig) -> str | None:
    """``--api-key-env`` names the key of ``--model``: another model (verifier, judge) gets it
    only when it is served from the same place, else its provider's own variable. A key is
    never sent to a host it was not given for."""
    if config.api_key_env is None:
        return None
    return config.api_key_env if parse_model(model).base_url == parse_model(config.model).base_url else None


class _Backends(NamedTuple):
    """What ``generate`` talks to: the model, the critic (often the same), the default grader."""

    main: Backend
    critic: Backend
    grader: Grader
    verify_every: int  # 0: no critiques


def _merged_config(config: GenerateConfig | None, options: dict[str, Any]) -> GenerateConfig:
    """``config`` with the keyword ``options`` over it, checked (ConfigurationError naming the problem)."""
    try:
        config = msgspec.structs.replace(config or GenerateConfig(), **options)
    except TypeError as exc:
        raise ConfigurationError(f"generate: {exc}") from None
    config.check()
    for name, model in {"model": config.model, "verifier_model": config.verifier_model}.items():
        if model and (",http://" in model or ",https://" in model):
            raise ConfigurationError(f"{name} lists several server URLs: that spreads a run over servers with "
                                     "--ray; a local run talks to one server")
    return config


async def _check_models(stack: AsyncExitStack, config: GenerateConfig) -> ServerCapacity | None:
    """The keys, then the servers, of the models ``config`` names: a missing key before a
    network call, a network call before any file; a default mock with nothing listening is
    started for the run, on ``stack`` (:func:`~open_strawberry.pipeline.servers.open_model_servers`).
    Returns what the model's server says it can take, when no budget was given (else None)."""
    models = {config.model, *([config.verifier_model] if config.verifier_model else [])}
    for model in models:
        api_key_for(parse_model(model), api_key_env=_key_env_for(model, config))
    await open_model_servers(stack, [parse_model(model) for model in sorted(models)])
    budgets = (config.max_concurrency, config.rpm, config.tpm, config.input_tpm, config.output_tpm)
    if any(value is not None for value in budgets):
        return None
    # a server that states its slots has no hidden capacity to find: more calls than slots only
    # queue inside it (and llama-cpp-python cuts off the stream in progress)
    return await probe_capacity(parse_model(config.model))


def _traces_for_slots(config: GenerateConfig, capacity: ServerCapacity | None) -> GenerateConfig:
    """``config`` with at most one trace in flight per slot when the server stated its slots.

    A slot keeps the conversation it served last; with more traces than slots, the slot a
    trace's next turn finds free has been taken by another trace since, and the server
    prefills the whole conversation again (llama-server picks an idle slot by common prefix,
    else the least recently used one, and keeps the displaced prompt in its RAM cache only
    when less than half of it survives). One trace per slot keeps every slot busy and brings
    each turn back to the slot that holds its prefix. ``--max-concurrency`` (or any budget)
    skips the probe, and with it this cap: ``max_traces`` then holds as given.
    """
    if capacity is None or capacity.slots is None or capacity.slots >= config.max_traces:
        return config
    return msgspec.structs.replace(config, max_traces=capacity.slots)


async def _open_backends(stack: AsyncExitStack, config: GenerateConfig, strategy: PromptStrategy,
                         backend: Backend | None, capacity: ServerCapacity | None) -> _Backends:
    """Open the grader and the backends ``generate`` creates (closed by ``stack``); a ``backend``
    given by the caller is used as it is, and left open."""
    judge = config.grader.removeprefix("judge:") if config.grader.startswith("judge:") else None
    grader = await stack.enter_async_context(open_grader(
        config.grader, api_key_env=_key_env_for(judge, config) if judge else None, timeout_s=config.timeout_s))
    main = backend
    journal = None
    if main is None and config.batch:
        journal = BatchJournal(journal_path(config.out))
        stack.callback(journal.close)
        main = _batch_backend(stack, config, config.model, journal, api_key_env=config.api_key_env)
    elif main is None:
        # a model whose chat template has no system role gets it folded into the first user turn
        folded: dict[str, Any] = {"system_role": False} if capacity and capacity.system_role is False else {}
        concurrency = config.max_concurrency if capacity is None else capacity.slots
        main = create_limited_backend(
            config.model, max_concurrency=concurrency, rpm=config.rpm, tpm=config.tpm,
            input_tpm=config.input_tpm, output_tpm=config.output_tpm, api_key_env=config.api_key_env,
            timeout_s=config.timeout_s, call_timeout_s=config.call_timeout_s, **folded)
        stack.push_async_callback(main.aclose)
    verify_every = strategy.verify_every(config.verify_every)
    critic = main
    if verify_every and config.verifier_model and config.verifier_model != config.model:
        critic = _critic_backend(stack, config, config.verifier_model, journal)
    return _Backends(main=main, critic=critic, grader=grader, verify_every=verify_every)


def _critic_backend(stack: AsyncExitStack, config: GenerateConfig, model: str,
                    journal: BatchJournal | None) -> LimitedBackend:
    """The backend of a verifier ``model`` apart from the run's: in a ``--batch`` run (a
    ``journal``) through its provider's batch API when it has one (its calls go in rounds of
    their own, beside the generator's, in the same journal), else synchronous (said in the log:
    those calls are billed at the synchronous price)."""
    key_env = _key_env_for(model, config)
    if journal is not None and parse_model(model).provider in BATCH_PROVIDERS:
        return _batch_backend(stack, config, model, journal, api_key_env=key_env)
    if journal is not None:
        _log.warning("verifier_not_batched", model=redact(model),
                     reason="its provider has no batch API: its calls go one by one, at the synchronous price")
    critic = create_limited_backend(model, api_key_env=key_env, timeout_s=config.timeout_s,
                                    call_timeout_s=config.call_timeout_s)
    stack.push_async_callback(critic.aclose)
    return critic


def _batch_backend(stack: AsyncExitStack, config: GenerateConfig, model: str, journal: BatchJournal, *,
                   api_key_env: str | None) -> LimitedBackend:
    """``--batch``: ``model``'s batch API behind a limiter with no budgets (a batch has its own),
    whose retries of a failed line wait for the next round, with the ``journal`` beside ``out``
    (``api_key_env``: the key's variable; None: the provider's own)."""
    batch = create_batch_backend(model, journal=journal, poll_s=config.batch_poll_s,
                                 api_key_env=api_key_env, timeout_s=config.timeout_s,
                                 call_timeout_s=config.call_timeout_s)
    # a rerun raises a journaled failure once before sending again: one attempt more than sends
    retry = RetryPolicy(max_attempts=batch.max_attempts + 1, initial_backoff_s=0.0, deadline_s=math.inf)
    main = LimitedBackend(batch, Limiter(LimiterConfig(learn_from_headers=False)), retry)
    stack.push_async_callback(main.aclose)
    return main


def _batch_statistics(*backends: Backend) -> BatchStatistics | None:
    """Where the batches of a ``--batch`` run stand, over its batch backends (the generator's,
    and a verifier's of its own); None when it has none."""
    inner = {id(b): b for b in (b.backend if isinstance(b, LimitedBackend) else b for b in backends)}
    parts = [b.statistics() for b in inner.values() if isinstance(b, BatchBackend)]
    return BatchStatistics.combined(parts) if parts else None


@dataclass
class _LocalRun:
    """One local run while it goes: its claim on the traces file, the tally of written records,
    the actor system once open (what a fatal error stops), and the progress it shows."""

    config: GenerateConfig
    claim: RunClaim
    main: Backend
    critic: Backend  # the verifier's backend: often main
    started: float  # perf_counter at the start
    planned: int
    todo: int
    prices: tuple[Prices | None, Prices | None] = (None, None)  # for the summary's cost: (prices, batch prices)
    generators: set[str] = field(default_factory=set)  # the Generator actors: their turns are counted
    limiters: list[Limiter] = field(default_factory=list)  # the model's and the critic's: Ctrl-C ends their waits
    running: list[ActorSystem] = field(default_factory=list)
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.tally = Tally(on_fatal=self._stop_admitting)

    def _stop_admitting(self, reason: str) -> None:
        _log.error("run_stopped", reason=reason, hint="fix the cause, then rerun with --retry-failed")
        for system in self.running:
            system.close_input()

    def pipeline(self, backends: _Backends, strategy: PromptStrategy, *, events: EventStream | None,
                 observers: Sequence[Callable[[TraceRecord], None]],
                 customize: Callable[[Pipeline], Pipeline | None] | None) -> Pipeline:
        """The standard graph, its sink observed by the tally, the events and ``observers``,
        edited by ``customize`` and checked (a bad edit fails here, before any call)."""
        watchers: list[Callable[[TraceRecord], None]] = [self.tally]
        if events is not None:
            publish = events.publish
            watchers.append(lambda r: publish(TraceFinished(
                trace_id=r.trace_id, problem_id=r.problem_id, sample=r.sample, status=r.status, correct=r.correct,
                turns=len(r.turns))))
        pipeline = standard_pipeline(self.config, main=backends.main, critic=backends.critic,
                                     grader=backends.grader, strategy=strategy, verify_every=backends.verify_every,
                                     events=events, observers=[*watchers, *observers])
        if customize is not None:
            pipeline = customize(pipeline) or pipeline
        pipeline.check(max_traces=self.config.max_traces)
        self.generators = {spec.name for spec in pipeline.specs if isinstance(spec.actor, Generator)}
        return pipeline

    async def traces(self, problems: Callable[[], Iterator[Problem]], strategy: PromptStrategy,
                     keep: Callable[[str, int], bool] | None) -> AsyncIterator[NewTrace]:
        """A new trace for each pair still to make."""
        shown_model = redact(self.config.model)  # a URL's user and password stay out of the records
        for problem, sample in self.claim.pairs(problems, keep=keep):
            yield NewTrace(state=TraceState(
                trace_id=_trace_id(self.config.seed, problem.id, sample), problem=problem, sample=sample,
                model=shown_model, strategy=strategy.name))

    def snapshot(self, system: ActorSystem) -> Progress:
        stats, tally = system.statistics(), self.tally
        limiter = self.main.limiter.statistics() if isinstance(self.main, LimitedBackend) else None
        batch = _batch_statistics(self.main, self.critic)
        return Progress(
            total=self.todo, resumed=self.claim.resumed, done=stats.finished, correct=tally.correct,
            graded=tally.graded, failed=tally.statuses["error"], in_flight=stats.in_flight,
            turns=sum(a.handled for a in stats.actors if a.name in self.generators),
            elapsed_s=time.perf_counter() - self.started, input_tokens=tally.input_tokens,
            output_tokens=tally.output_tokens, calls_in_flight=limiter.in_flight if limiter else 0,
            rate_limited=limiter.rate_limited if limiter else 0, retries=limiter.retries if limiter else 0,
            empty_turns=tally.empty_turns, stopped=tally.stopped, batches=batch.batches if batch else {},
            batch_requests=batch.requests if batch else {}, batch_round=batch.round if batch else 0,
            batch_waiting_s=batch.waiting_s if batch else 0.0,
            waiting=self._waiting(limiter))

    def _waiting(self, main: LimiterStatistics | None) -> str | None:
        """The long wait going on now, the model's, else the verifier's (see :func:`_long_wait`)."""
        if main is not None and (said := _long_wait(main, redact(self.config.model))) is not None:
            return said
        critic = self.critic if self.critic is not self.main else None
        if isinstance(critic, LimitedBackend) and self.config.verifier_model:
            return _long_wait(critic.limiter.statistics(), redact(self.config.verifier_model))
        return None

    def summary(self, system: ActorSystem, capacity: ServerCapacity | None) -> RunSummary:
        stats = system.statistics()
        peak_calls = self.main.limiter.statistics().peak_in_flight if isinstance(self.main, LimitedBackend) else 0
        return self.tally.summary(
            prices=self.prices[0], batch_prices=self.prices[1], out=str(self.claim.out),
            manifest=str(manifest_path(self.claim.out)), planned=self.planned,
            resumed=self.claim.resumed, written=stats.finished, elapsed_s=time.perf_counter() - self.started,
            interrupted=stats.interrupts > 0, stopped=self.tally.stopped,
            server_capacity=capacity.describe() if capacity is not None else None,
            peak_calls_in_flight=peak_calls,
            actor_queue_ms={a.name: {"mean": a.queue_wait.mean_s * 1000, "p50": a.queue_wait.p50_s * 1000,
                                     "p99": a.queue_wait.p99_s * 1000, "handled": a.handled} for a in stats.actors})


def _long_wait(limiter: LimiterStatistics, model: str) -> str | None:
    """The limiter's long wait going on now, in words: ``58 s for the token budget of MODEL``."""
    what = limiter.long_wait_for
    return None if what is None else f"{limiter.long_wait_left_s:.0f} s for {wait_reason(what)} of {model}"


async def _withdraw_on_interrupt(system: ActorSystem, limiters: Sequence[Limiter]) -> None:
    """At the first Ctrl-C, end the calls that wait for a budget, a cooldown or a retry: they
    were never sent, so their traces leave unwritten (a rerun makes them) instead of holding
    the run up for minutes; the calls in flight finish."""
    await system.wait_interrupted()
    for limiter in limiters:
        limiter.withdraw_waiting()


async def _run(run: _LocalRun, pipeline: Pipeline, traces: AsyncIterator[NewTrace], *,
               on_progress: Callable[[Progress], None] | None, progress_every_s: float,
               handle_signals: bool) -> ActorSystem:
    """Stream ``traces`` through ``pipeline`` until the last one is written (or the run is
    stopped), reporting progress every ``progress_every_s``, and once more at the end."""
    async with (pipeline.open(max_traces=run.config.max_traces, handle_signals=handle_signals) as system,
                anyio.create_task_group() as tg):
        run.running.append(system)
        tg.start_soon(_withdraw_on_interrupt, system, run.limiters)
        if on_progress is not None:
            async def report() -> None:
                while True:
                    on_progress(run.snapshot(system))
                    await anyio.sleep(progress_every_s)

            tg.start_soon(report)
        await system.feed(traces)
        await system.aclose()  # wait for the traces in flight
        tg.cancel_scope.cancel()
    if on_progress is not None:
        on_progress(run.snapshot(system))
    return system


async def generate(
    config: GenerateConfig | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 0.5,
    handle_signals: bool = False,
    command: list[str] | None = None,
    backend: Backend | None = None,
    events: EventStream | None = None,
    customize: Callable[[Pipeline], Pipeline | None] | None = None,
    pairs: Callable[[str, int], bool] | None = None,
    observers: Sequence[Callable[[TraceRecord], None]] = (),
    prices: Prices | None = None,
    batch_prices: Prices | None = None,
    **options: Any,
) -> RunSummary:
    """Run the pipeline; see the module docstring.

    Give a :class:`GenerateConfig`, or its options as keywords, or both (keywords win)::

        await generate(problems="builtin:letters:20", model="ollama:llama3.1:8b", out="t.jsonl")

    ``backend`` replaces the one ``model`` names (an SDK client, a test double): it stays yours,
    and is not closed, nor are its limiter's waits withdrawn at an interrupt. A ``mock:`` or
    ``mock-anthropic:`` model with no URL of its own and nothing listening at the mock's default
    address gets the mock started in this event loop for the run (said on stderr), stopped when
    the run ends. The backends, the grader and the connections ``generate`` creates itself are
    closed when it returns, however it returns.
    ``events`` receives the run's events (see :mod:`open_strawberry.events`) and is closed at
    the end; ``customize``
    may edit the standard :class:`~open_strawberry.runtime.Pipeline` (replace or insert
    actors, resize pools) before it is checked and run. ``pairs`` narrows the run to the
    ``(problem_id, sample)`` pairs for which it returns true (one share of a bigger run, as
    each shard of :mod:`open_strawberry.distributed` makes); the others are neither made nor
    counted. ``observers`` are called with each record the sink has written, in the sink's
    task, after the run's own tally (keep them quick: the sink waits for them). With
    ``prices`` (or ``batch_prices``; {``provider:model``: (input, output) per million tokens})
    the summary has the cost of the records written, the tokens of batched calls at the batch
    prices (half the prices unless given: :meth:`~open_strawberry.traces.tally.Tally.cost`).
    """
    config = _merged_config(config, options)
    started = time.perf_counter()
    count, problems = problem_source(config)
    strategy = create_strategy(config.strategy, final_every=config.final_every)
    async with AsyncExitStack() as stack:
        capacity = await _check_models(stack, config) if backend is None else None
        config = _traces_for_slots(config, capacity)
        if events is not None:
            stack.callback(events.close)
        backends = await _open_backends(stack, config, strategy, backend, capacity)
        # everything is checked: only now is anything on disk touched
        claim = await stack.enter_async_context(claim_run(config, problems=count, command=command))
        planned = count * config.samples if pairs is None else sum(
            1 for _ in pairs_to_make(problems, config.samples, keep=pairs))
        claim.record_start(server_capacity=capacity.describe() if capacity is not None else None)
        todo = planned if not claim.done else sum(1 for _ in claim.pairs(problems, keep=pairs))
        run = _LocalRun(config, claim, backends.main, backends.critic, started=started, planned=planned, todo=todo,
                        prices=(prices, batch_prices),
                        limiters=[b.limiter for b in (backends.main, backends.critic)  # ours: a caller's lives on
                                  if isinstance(b, LimitedBackend) and b is not backend])
        pipeline = run.pipeline(backends, strategy, events=events, observers=observers, customize=customize)
        system = await _run(run, pipeline, run.traces(problems, strategy, pairs), on_progress=on_progress,
                            progress_every_s=progress_every_s, handle_signals=handle_signals)
        summary = run.summary(system, capacity)
        claim.record_finish(summary)
    return summary
