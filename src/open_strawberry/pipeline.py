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
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import msgspec

from open_strawberry.actors import Arbiter, ArbiterPolicy, Generator, GraderActor, JsonlSink, Prompter, Verifier
from open_strawberry.backends.base import Backend
from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream, TraceFinished
from open_strawberry.limiter import LimitedBackend, create_limited_backend
from open_strawberry.messages import NewTrace, Problem, TraceRecord, TraceState
from open_strawberry.output import finished_pairs, write_manifest
from open_strawberry.problems.builtin import BUILTIN_SETS, builtin_problems
from open_strawberry.problems.sources import FieldMap, open_problem_source
from open_strawberry.runtime import ActorSpec, ActorSystem, Pipeline
from open_strawberry.strategies import create_strategy

__all__ = ["GenerateConfig", "Progress", "RunSummary", "generate", "load_config"]


class GenerateConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every option of ``generate``; the TOML file (``--config``) holds the same keys."""

    problems: str = ""  # a file, hf:NAME_OR_DIR, or builtin:NAME[:COUNT]
    problems_format: Literal["auto", "jsonl", "gsm8k", "math", "parquet", "hf"] = "auto"
    id_field: str | None = "id"
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    split: str = "train"
    model: str = "mock:reasoner"
    out: str = "traces.jsonl"
    samples: int = 1
    max_traces: int = 256
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    strategy: Literal["nudge", "verify"] = "nudge"
    max_turns: int = 12
    final_every: int = 3
    verify_every: int = 0
    verify_window: int = 3
    verifier_model: str | None = None
    veto_below: float | None = 0.5
    temperature: float | None = 0.7
    max_tokens: int = 1024
    max_trace_tokens: int | None = None
    seed: int = 0
    grader: str = "auto"
    api_key_env: str | None = None
    timeout_s: float = 600.0

    def check(self) -> None:
        """Raise ConfigurationError for values no run can use."""
        positive = {"samples": self.samples, "max_traces": self.max_traces, "max_turns": self.max_turns,
                    "max_tokens": self.max_tokens, "verify_window": self.verify_window}
        for name, value in positive.items():
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {value}")
        for name, value in {"final_every": self.final_every, "verify_every": self.verify_every}.items():
            if value < 0:
                raise ConfigurationError(f"{name} must not be negative, got {value}")
        if not self.problems:
            raise ConfigurationError("no problems given: pass a JSONL file or builtin:NAME[:COUNT]")


def load_config(path: str | Path) -> GenerateConfig:
    """Read a TOML config file; errors name the file and the key."""
    path = Path(path)
    try:
        return msgspec.toml.decode(path.read_bytes(), type=GenerateConfig)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except msgspec.ValidationError as exc:
        message = str(exc).replace("Object contains unknown field", "unknown option")
        raise ConfigurationError(f"{path}: {message}") from None
    except msgspec.DecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """What a progress display shows, sampled while the run goes on."""

    total: int  # traces this run will make (resumed ones left out)
    resumed: int
    done: int
    correct: int
    graded: int
    failed: int
    in_flight: int
    turns: int
    elapsed_s: float
    input_tokens: int
    output_tokens: int
    calls_in_flight: int
    rate_limited: int
    retries: int

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return (self.total - self.done) * self.elapsed_s / self.done


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    out: str
    manifest: str
    planned: int
    resumed: int
    written: int
    statuses: dict[str, int]
    correct: int
    graded: int
    pass_rate: float | None
    mean_turns: float | None
    input_tokens: int
    output_tokens: int
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    turn_p50_s: float | None
    turn_p99_s: float | None
    elapsed_s: float
    interrupted: bool
    actor_queue_ms: dict[str, dict[str, float]] = {}  # {actor: wait in its inbox: mean, p50, p99 (ms), handled}


class _Tally:
    """Running totals of the records the sink wrote (an observer of the sink)."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.correct = self.graded = self.turns = self.input_tokens = self.output_tokens = 0
        self.ttfts: list[float] = []
        self.turn_times: list[float] = []

    def __call__(self, record: TraceRecord) -> None:
        self.statuses[record.status] += 1
        if record.correct is not None:
            self.graded += 1
            self.correct += record.correct
        self.turns += len(record.turns)
        self.input_tokens += record.usage.input_tokens
        self.output_tokens += record.usage.output_tokens
        if len(self.ttfts) < 100_000:  # enough for percentiles; memory stays flat
            for turn in record.turns:
                if turn.timings.ttft_s is not None:
                    self.ttfts.append(turn.timings.ttft_s)
                self.turn_times.append(turn.timings.e2e_s)


def _trace_id(seed: int, problem_id: str, sample: int) -> str:
    return hashlib.blake2b(f"{seed}\0{problem_id}\0{sample}".encode(), digest_size=8).hexdigest()


def _problem_source(config: GenerateConfig) -> tuple[int, Callable[[], Iterator[Problem]]]:
    """(how many problems, a function that streams them), checked before any call."""
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
               progress_every_s: float, handle_signals: bool) -> ActorSystem:
    async with (pipeline.open(max_traces=config.max_traces, handle_signals=handle_signals) as system,
                anyio.create_task_group() as tg):
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


def _percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


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
    **options: Any,
) -> RunSummary:
    """Run the pipeline; see the module docstring.

    Give a :class:`GenerateConfig`, or its options as keywords, or both (keywords win)::

        await generate(problems="builtin:letters:20", model="ollama:llama3.1:8b", out="t.jsonl")

    ``backend`` replaces the one ``model`` names (an SDK client, a test double); ``events``
    receives the run's events (see :mod:`open_strawberry.events`) and is closed at the end;
    ``customize`` may edit the standard :class:`~open_strawberry.runtime.Pipeline` (replace or
    insert actors, resize pools) before it is checked and run.
    """
    try:
        config = msgspec.structs.replace(config or GenerateConfig(), **options)
    except TypeError as exc:
        raise ConfigurationError(f"generate: {exc}") from None
    config.check()
    started = time.perf_counter()
    count, problems = _problem_source(config)
    strategy = create_strategy(config.strategy, final_every=config.final_every)
    if backend is None:
        for model in {config.model, *([config.verifier_model] if config.verifier_model else [])}:
            await check_reachable(parse_model(model).base_url)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished_pairs(out)
    planned = count * config.samples
    manifest = {"command": command or sys.argv, "config": msgspec.to_builtins(config), "versions": _versions(),
                "started_at": time.time(), "problems": count, "samples": config.samples,
                "resumed_records": len(done)}
    manifest_file = write_manifest(out, manifest)

    main = backend or create_limited_backend(
        config.model, max_concurrency=config.max_concurrency, rpm=config.rpm, tpm=config.tpm,
        input_tpm=config.input_tpm, output_tpm=config.output_tpm, api_key_env=config.api_key_env,
        timeout_s=config.timeout_s)
    verify_every = strategy.verify_every(config.verify_every)
    critic = main
    if verify_every and config.verifier_model and config.verifier_model != config.model:
        critic = create_limited_backend(config.verifier_model, api_key_env=config.api_key_env,
                                        timeout_s=config.timeout_s)
    workers = max(1, min(config.max_traces, config.max_concurrency or 256))
    tally = _Tally()
    observers: list[Callable[[TraceRecord], None]] = [tally]
    if events is not None:
        publish = events.publish
        observers.append(lambda r: publish(TraceFinished(trace_id=r.trace_id, problem_id=r.problem_id, sample=r.sample,
                                                         status=r.status, correct=r.correct, turns=len(r.turns))))
    policy = ArbiterPolicy(max_turns=config.max_turns, max_trace_tokens=config.max_trace_tokens,
                           verify_every=verify_every, verify_window=config.verify_window, veto_below=config.veto_below)
    specs = [
        ActorSpec("prompter", Prompter(strategy), workers=2),
        ActorSpec("generator", Generator(main, temperature=config.temperature, max_tokens=config.max_tokens,
                                         seed=config.seed, events=events), workers=workers),
        ActorSpec("arbiter", Arbiter(policy), workers=2),
        ActorSpec("grader", GraderActor(config.grader)),
        ActorSpec("sink", JsonlSink(out, observers=observers)),
    ]
    if verify_every:
        specs.append(ActorSpec("verifier", Verifier(critic, seed=config.seed), workers=workers))
    pipeline = Pipeline(specs)
    if customize is not None:
        pipeline = customize(pipeline) or pipeline
    pipeline.check(max_traces=config.max_traces)  # a bad edit fails here, before any call
    todo = planned if not done else sum(
        1 for problem in problems() for sample in range(config.samples) if (problem.id, sample) not in done)

    async def traces() -> AsyncIterator[NewTrace]:
        for problem in problems():
            for sample in range(config.samples):
                if (problem.id, sample) in done:
                    continue
                yield NewTrace(state=TraceState(trace_id=_trace_id(config.seed, problem.id, sample), problem=problem,
                                                sample=sample, model=config.model, strategy=strategy.name))

    def snapshot(system: ActorSystem) -> Progress:
        stats = system.statistics()
        limiter = main.limiter.statistics() if isinstance(main, LimitedBackend) else None
        return Progress(
            total=todo, resumed=len(done), done=stats.finished, correct=tally.correct, graded=tally.graded,
            failed=tally.statuses["error"], in_flight=stats.in_flight,
            turns=sum(a.handled for a in stats.actors if a.name == "generator"),
            elapsed_s=time.perf_counter() - started, input_tokens=tally.input_tokens,
            output_tokens=tally.output_tokens, calls_in_flight=limiter.in_flight if limiter else 0,
            rate_limited=limiter.rate_limited if limiter else 0, retries=limiter.retries if limiter else 0)

    try:
        system = await _run(pipeline, config, traces(), snapshot, on_progress, progress_every_s, handle_signals)
    finally:
        if events is not None:
            events.close()
    if on_progress is not None:
        on_progress(snapshot(system))
    stats = system.statistics()
    summary = RunSummary(
        out=str(out), manifest=str(manifest_file), planned=planned, resumed=len(done), written=stats.finished,
        statuses=dict(tally.statuses), correct=tally.correct, graded=tally.graded,
        pass_rate=tally.correct / tally.graded if tally.graded else None,
        mean_turns=tally.turns / stats.finished if stats.finished else None,
        input_tokens=tally.input_tokens, output_tokens=tally.output_tokens,
        ttft_p50_s=_percentile(tally.ttfts, 50), ttft_p90_s=_percentile(tally.ttfts, 90),
        ttft_p99_s=_percentile(tally.ttfts, 99), turn_p50_s=_percentile(tally.turn_times, 50),
        turn_p99_s=_percentile(tally.turn_times, 99), elapsed_s=time.perf_counter() - started,
        interrupted=stats.interrupts > 0,
        actor_queue_ms={a.name: {"mean": a.queue_wait.mean_s * 1000, "p50": a.queue_wait.p50_s * 1000,
                                 "p99": a.queue_wait.p99_s * 1000, "handled": a.handled} for a in stats.actors})
    write_manifest(out, {**manifest, "finished_at": time.time(), "summary": msgspec.to_builtins(summary)})
    return summary
