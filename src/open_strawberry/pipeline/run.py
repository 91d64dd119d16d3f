"""``generate``: the product's main job, as a function of a :class:`GenerateConfig`.

It checks the problems file (before any call), resumes the traces file (skipping finished
``(problem_id, sample)`` pairs), writes the manifest, builds the standard graph::

    problems ─► Prompter ─► Generator (pool) ─► Arbiter ─► Grader ─► Sink (JSONL)
                   ▲                              │  ▲
                   └───────── next turn ──────────┘  └──► Verifier (pool) ──┘

and streams the problems through it, reporting progress to an optional callback.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import msgspec
import structlog

from open_strawberry.actors import Generator
from open_strawberry.backends.base import Backend
from open_strawberry.backends.capacity import ServerCapacity, probe_capacity
from open_strawberry.backends.models import api_key_for, parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream, TraceFinished
from open_strawberry.grading import open_grader
from open_strawberry.limiter import LimitedBackend, create_limited_backend
from open_strawberry.messages import NewTrace, Problem, TraceRecord, TraceState
from open_strawberry.pipeline.config import GenerateConfig
from open_strawberry.pipeline.standard import standard_pipeline
from open_strawberry.pipeline.summary import Progress, RunSummary, Tally
from open_strawberry.problems.builtin import BUILTIN_SETS, builtin_problems
from open_strawberry.problems.sources import FieldMap, open_problem_source
from open_strawberry.prompting import create_strategy
from open_strawberry.redact import redact, redact_data
from open_strawberry.runtime import ActorSystem, Pipeline
from open_strawberry.traces.files import failed_path, finished_pairs, set_aside_failed, write_manifest
from open_strawberry.traces.lock import locked_traces_file

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


def _claim_traces_file(out: Path, holder: str, stack: AsyncExitStack, *,
                       retry_failed: bool = False) -> set[tuple[str, int]]:
    """Lock the traces file ``out`` for the run (released by ``stack``) and return the pairs it
    already holds (repairing a torn last line); with ``retry_failed``, failed records are moved
    to ``<out>.failed.jsonl`` first, so their pairs run again. One clear error when the file
    cannot be written."""
    try:
        if out.is_dir():
            raise ConfigurationError(f"--out {out} is a directory: name a traces file, e.g. {out / 'traces.jsonl'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        stack.enter_context(locked_traces_file(out, holder=holder))
        done = finished_pairs(out)  # first: repairs a torn last line, and checks every line
        if retry_failed and done:
            moved = set_aside_failed(out)
            if moved:
                _log.info("retrying_failed_traces", count=moved, kept_in=str(failed_path(out)))
                done = finished_pairs(out)
        return done
    except OSError as exc:
        raise ConfigurationError(f"cannot write the traces file {out}: {exc.strerror or exc}") from None


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("open-strawberry", "anyio", "aiohttp", "msgspec", "structlog", "openai", "anthropic"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


async def _run(pipeline: Pipeline, config: GenerateConfig, traces: AsyncIterator[NewTrace],
               snapshot: Callable[[ActorSystem], Progress], on_progress: Callable[[Progress], None] | None,
               progress_every_s: float, handle_signals: bool, running: list[ActorSystem]) -> ActorSystem:
    async with (pipeline.open(max_traces=config.max_traces, handle_signals=handle_signals) as system,
                anyio.create_task_group() as tg):
        running.append(system)
        if on_progress is not None:
            async def report() -> None:
                while True:
                    on_progress(snapshot(system))
                    await anyio.sleep(progress_every_s)

            tg.start_soon(report)
        await system.feed(traces)
        await system.aclose()  # wait for the traces in flight
        tg.cancel_scope.cancel()
    return system


async def check_reachable(base_url: str, *, timeout_s: float = 10.0) -> None:
    """Open (and close) a TCP connection to the server of ``base_url``, so that a wrong URL or
    a server that is not running is one clear error before the run, not a file of failures."""
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with anyio.fail_after(timeout_s):
            stream = await anyio.connect_tcp(url.hostname or "localhost", port)
        await stream.aclose()
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigurationError(f"cannot reach the model server at {base_url} ({reason}); is it running?") from None


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
    **options: Any,
) -> RunSummary:
    """Run the pipeline; see the module docstring.

    Give a :class:`GenerateConfig`, or its options as keywords, or both (keywords win)::

        await generate(problems="builtin:letters:20", model="ollama:llama3.1:8b", out="t.jsonl")

    ``backend`` replaces the one ``model`` names (an SDK client, a test double): it stays
    yours, and is not closed. The backends, the grader and the connections ``generate``
    creates itself are closed when it returns, however it returns. ``events`` receives the
    run's events (see :mod:`open_strawberry.events`) and is closed at the end; ``customize``
    may edit the standard :class:`~open_strawberry.runtime.Pipeline` (replace or insert
    actors, resize pools) before it is checked and run. ``pairs`` narrows the run to the
    ``(problem_id, sample)`` pairs for which it returns true (one share of a bigger run, as
    each shard of :mod:`open_strawberry.distributed` makes); the others are neither made nor
    counted. ``observers`` are called with each record as it is written, after the run's own.
    """
    try:
        config = msgspec.structs.replace(config or GenerateConfig(), **options)
    except TypeError as exc:
        raise ConfigurationError(f"generate: {exc}") from None
    config.check()
    for name, model in {"model": config.model, "verifier_model": config.verifier_model}.items():
        if model and (",http://" in model or ",https://" in model):
            raise ConfigurationError(f"{name} lists several server URLs: that spreads a run over servers with "
                                     "--ray; a local run talks to one server")
    started = time.perf_counter()
    count, problems = problem_source(config)
    strategy = create_strategy(config.strategy, final_every=config.final_every)
    capacity: ServerCapacity | None = None
    concurrency = config.max_concurrency
    if backend is None:
        models = {config.model, *([config.verifier_model] if config.verifier_model else [])}
        for model in models:  # a missing key before a network call, a network call before any file
            api_key_for(parse_model(model), api_key_env=_key_env_for(model, config))
        for model in models:
            await check_reachable(parse_model(model).base_url)
        budgets = (config.max_concurrency, config.rpm, config.tpm, config.input_tpm, config.output_tpm)
        if all(value is None for value in budgets):
            # a server that states its slots has no hidden capacity to find: more calls than
            # slots only queue inside it (and llama-cpp-python cuts off the stream in progress)
            capacity = await probe_capacity(parse_model(config.model))
            concurrency = capacity.slots if capacity is not None else None
    async with AsyncExitStack() as stack:
        if events is not None:
            stack.callback(events.close)
        judge = config.grader.removeprefix("judge:") if config.grader.startswith("judge:") else None
        grader = await stack.enter_async_context(open_grader(
            config.grader, api_key_env=_key_env_for(judge, config) if judge else None, timeout_s=config.timeout_s))
        main = backend
        if main is None:
            # a model whose chat template has no system role gets it folded into the first user turn
            folded: dict[str, Any] = {"system_role": False} if capacity and capacity.system_role is False else {}
            main = create_limited_backend(
                config.model, max_concurrency=concurrency, rpm=config.rpm, tpm=config.tpm,
                input_tpm=config.input_tpm, output_tpm=config.output_tpm, api_key_env=config.api_key_env,
                timeout_s=config.timeout_s, call_timeout_s=config.call_timeout_s, **folded)
            stack.push_async_callback(main.aclose)
        verify_every = strategy.verify_every(config.verify_every)
        critic = main
        if verify_every and config.verifier_model and config.verifier_model != config.model:
            critic = create_limited_backend(config.verifier_model,
                                            api_key_env=_key_env_for(config.verifier_model, config),
                                            timeout_s=config.timeout_s, call_timeout_s=config.call_timeout_s)
            stack.push_async_callback(critic.aclose)

        out = Path(config.out)
        # everything is checked: only now is anything on disk touched
        done = _claim_traces_file(out, " ".join(command or sys.argv), stack, retry_failed=config.retry_failed)
        planned = count * config.samples if pairs is None else sum(
            1 for problem in problems() for sample in range(config.samples) if pairs(problem.id, sample))
        manifest = {"command": command or sys.argv, "config": msgspec.to_builtins(config), "versions": _versions(),
                    "started_at": time.time(), "problems": count, "samples": config.samples,
                    "resumed_records": len(done),
                    "server_capacity": capacity.describe() if capacity is not None else None}
        manifest = redact_data(manifest)  # a key typed into the command line, a URL's password
        manifest_file = write_manifest(out, manifest)

        running: list[ActorSystem] = []  # the system, once open: what a fatal error stops

        def stop_admitting(reason: str) -> None:
            _log.error("run_stopped", reason=reason, hint="fix the cause, then rerun with --retry-failed")
            for system in running:
                system.close_input()

        tally = Tally(on_fatal=stop_admitting)
        written: list[Callable[[TraceRecord], None]] = [tally]
        if events is not None:
            publish = events.publish
            written.append(lambda r: publish(TraceFinished(
                trace_id=r.trace_id, problem_id=r.problem_id, sample=r.sample, status=r.status, correct=r.correct,
                turns=len(r.turns))))
        written.extend(observers)
        pipeline = standard_pipeline(config, main=main, critic=critic, grader=grader, strategy=strategy,
                                     verify_every=verify_every, events=events, observers=written)
        if customize is not None:
            pipeline = customize(pipeline) or pipeline
        pipeline.check(max_traces=config.max_traces)  # a bad edit fails here, before any call
        generators = {spec.name for spec in pipeline.specs if isinstance(spec.actor, Generator)}
        todo = planned if not done else sum(
            1 for problem in problems() for sample in range(config.samples)
            if (problem.id, sample) not in done and (pairs is None or pairs(problem.id, sample)))

        shown_model = redact(config.model)  # a URL's user and password stay out of the records

        async def traces() -> AsyncIterator[NewTrace]:
            for problem in problems():
                for sample in range(config.samples):
                    if (problem.id, sample) in done or (pairs is not None and not pairs(problem.id, sample)):
                        continue
                    yield NewTrace(state=TraceState(
                        trace_id=_trace_id(config.seed, problem.id, sample), problem=problem, sample=sample,
                        model=shown_model, strategy=strategy.name))

        def snapshot(system: ActorSystem) -> Progress:
            stats = system.statistics()
            limiter = main.limiter.statistics() if isinstance(main, LimitedBackend) else None
            return Progress(
                total=todo, resumed=len(done), done=stats.finished, correct=tally.correct, graded=tally.graded,
                failed=tally.statuses["error"], in_flight=stats.in_flight,
                turns=sum(a.handled for a in stats.actors if a.name in generators),
                elapsed_s=time.perf_counter() - started, input_tokens=tally.input_tokens,
                output_tokens=tally.output_tokens, calls_in_flight=limiter.in_flight if limiter else 0,
                rate_limited=limiter.rate_limited if limiter else 0, retries=limiter.retries if limiter else 0,
                empty_turns=tally.empty_turns, stopped=tally.stopped)

        system = await _run(pipeline, config, traces(), snapshot, on_progress, progress_every_s, handle_signals,
                            running)
        if on_progress is not None:
            on_progress(snapshot(system))
        peak_calls = main.limiter.statistics().peak_in_flight if isinstance(main, LimitedBackend) else 0
    stats = system.statistics()
    summary = tally.summary(
        out=str(out), manifest=str(manifest_file), planned=planned, resumed=len(done), written=stats.finished,
        elapsed_s=time.perf_counter() - started, interrupted=stats.interrupts > 0,
        stopped=tally.stopped, server_capacity=capacity.describe() if capacity is not None else None,
        peak_calls_in_flight=peak_calls,
        actor_queue_ms={a.name: {"mean": a.queue_wait.mean_s * 1000, "p50": a.queue_wait.p50_s * 1000,
                                 "p99": a.queue_wait.p99_s * 1000, "handled": a.handled} for a in stats.actors})
    write_manifest(out, redact_data({**manifest, "finished_at": time.time(),
                                     "summary": msgspec.to_builtins(summary)}))
    return summary
