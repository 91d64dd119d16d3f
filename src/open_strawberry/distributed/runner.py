"""The driver of a run on Ray: :func:`generate_on_ray`.

It does what :func:`~open_strawberry.pipeline.generate` does before any call (checks the
options and the whole problems file, claims ``--out`` with the same
:func:`~open_strawberry.pipeline.preflight.claim_run`: lock, resume, manifest), merges what a
killed earlier run left in shard files, then hands the pairs still to make to Ray tasks, one
shard each, merges each shard's file into ``--out`` as the shard finishes, and sums the shards'
progress into the one display. Ray is imported when a run starts, and only then
(:mod:`~open_strawberry.distributed.cluster`); the driver (:class:`_Run`) is given the module.
"""

from __future__ import annotations

import math
import secrets
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import msgspec
import structlog

from open_strawberry.backends.models import parse_model
from open_strawberry.distributed.budget import shared_budgets
from open_strawberry.distributed.cluster import cluster_target, open_cluster, starts_local_cluster
from open_strawberry.distributed.coordinator import Coordinator, combine_progress, combine_queue_waits
from open_strawberry.distributed.merge import merge_shard, salvage_shards
from open_strawberry.distributed.sharding import server_for_shard, shard_file_name, shard_of, split_servers
from open_strawberry.distributed.worker import DRIVER_MARKER, ShardOutcome, ShardTask, run_shard
from open_strawberry.errors import ConfigurationError, InterruptedRunError, OpenStrawberryError
from open_strawberry.messages import Problem, TraceRecord
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary, check_reachable
from open_strawberry.pipeline.preflight import Pair, RunClaim, claim_run, pairs_to_make, run_versions
from open_strawberry.pipeline.run import problem_source
from open_strawberry.pipeline.summary import Tally
from open_strawberry.traces.files import manifest_path

__all__ = ["MAX_SHARDS", "generate_on_ray"]

MAX_SHARDS = 10_000  # each shard costs a task, a file and a merge: more buys no spread, only overhead
SHIPPED_PROBLEMS_LIMIT = 64 * 2**20  # a problems file up to this size goes to workers through Ray's object store

_log = structlog.get_logger("open_strawberry.distributed")


class _Plan(msgspec.Struct, frozen=True):
    pending: list[int]  # per shard: pairs to make
    done: list[frozenset[Pair]]  # per shard: its pairs already in --out


def _plan(problems: Callable[[], Iterable[Problem]], samples: int, done: set[Pair], shards: int) -> _Plan:
    pending = [0] * shards
    for problem, sample in pairs_to_make(problems, samples, done=done):
        pending[shard_of(problem.id, sample, shards)] += 1
    mine: list[set[Pair]] = [set() for _ in range(shards)]
    for pair in done:
        mine[shard_of(*pair, shards)].add(pair)
    return _Plan(pending=pending, done=[frozenset(pairs) for pairs in mine])


def _absolute_paths(config: GenerateConfig) -> tuple[GenerateConfig, Path | None, Path]:
    """``config`` with its problems file (if it names one) from the root, that file, and the
    traces file from the root (workers start elsewhere)."""
    path, out = Path(config.problems), Path(config.out).absolute()
    if not path.is_file():
        return config, None, out
    return msgspec.structs.replace(config, problems=str(path.absolute())), path.absolute(), out


def _shard_dir(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def _share(value: int, workers: int) -> int:
    return max(1, math.ceil(value / workers))


def _checked(config: GenerateConfig | None, options: dict[str, Any], *, workers: int | None, shards: int | None,
             max_retries: int) -> tuple[GenerateConfig, list[str]]:
    """``config`` with the keyword ``options`` over it, checked with the driver's own options;
    and the servers its model string lists."""
    try:
        config = msgspec.structs.replace(config or GenerateConfig(), **options)
    except TypeError as exc:
        raise ConfigurationError(f"generate_on_ray: {exc}") from None
    config.check()
    servers = split_servers(config.model)
    for name, value in {"workers": workers, "shards": shards, "max_retries": max_retries}.items():
        if value is not None and value < (0 if name == "max_retries" else 1):
            raise ConfigurationError(f"{name} must be at least {0 if name == 'max_retries' else 1}, got {value}")
    return config, servers


def _sizes(ray: ModuleType | None, workers: int | None, shards: int | None, todo: int) -> tuple[int, int]:
    """(workers, shards): as given, else the cluster's CPUs and as many shards; never more shards
    than pairs to make or :data:`MAX_SHARDS`, nor more workers than shards (a value given and
    cut is logged). 1 and 1 when nothing is left to make, and so no cluster."""
    if ray is None:
        return workers or 1, shards or 1
    wanted = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    shards_now = min(shards or wanted, todo, MAX_SHARDS)
    if (shards or 0) > shards_now or (workers or 0) > shards_now:
        _log.warning("ray_sizes_capped", shards_asked=shards, workers_asked=workers, shards=shards_now,
                     workers=min(wanted, shards_now), pairs_to_make=todo, max_shards=MAX_SHARDS)
    return min(wanted, shards_now), shards_now


def _merge_leftovers(out: Path, lock_wait_s: float, done: set[Pair], observe: Callable[[TraceRecord], None]) -> None:
    """Merge into ``out`` the shard files an earlier driver left (killed, or interrupted twice):
    the :class:`~open_strawberry.pipeline.preflight.LeftoverMerger` of a Ray run's claim."""
    salvaged = salvage_shards(_shard_dir(out), out, done, observe=observe, lock_wait_s=lock_wait_s)
    if salvaged:
        _log.info("merged_leftover_shards", records=salvaged, out=str(out))


@dataclass(frozen=True, kw_only=True)
class _Options:
    """How one driver run goes, fixed before its first task starts."""

    config: GenerateConfig  # its problems file from the root
    out: Path  # from the root
    run_id: str
    run_dir: Path  # <out>.shards/<run_id>: the shard files of this run
    workers: int
    shards: int
    servers: list[str]  # one model string per server; shard i calls server i mod n
    budgets: dict[str, float]  # {budget: per minute} shared through the coordinator; empty: none
    problems_file: Path | None  # the problems file, when the config names one
    todo: int  # pairs this run makes
    started: float  # perf_counter at the start
    on_progress: Callable[[Progress], None] | None = None
    progress_every_s: float = 0.5
    handle_signals: bool = False
    runtime_env: dict[str, Any] | None = None
    max_retries: int = 3
    lease_interval_s: float = 0.05
    lock_wait_s: float = 60.0
    log_level: str = "warning"
    log_json: bool = False


class _Outcome:
    """What the run has put into ``--out``: the records it merged (counted in ``written``, seen by
    the tally), the shards' summaries, whether it was interrupted or stopped early. Ray-free."""

    def __init__(self, *, lock_wait_s: float) -> None:
        self.lock_wait_s = lock_wait_s
        self.tally = Tally()
        self.written = 0
        self.summaries: list[RunSummary] = []
        self.interrupted = False
        self.stopped: str | None = None

    def merge(self, claim: RunClaim, source: Path) -> int:
        """Merge one shard file into the claimed traces file; how many records it added."""
        added = merge_shard(source, claim.out, claim.done, observe=self.tally, lock_wait_s=self.lock_wait_s)
        self.written += added
        return added

    def salvage(self, claim: RunClaim, shard_dir: Path) -> int:
        """Merge every shard file left under ``shard_dir``; how many records it added."""
        added = salvage_shards(shard_dir, claim.out, claim.done, observe=self.tally, lock_wait_s=self.lock_wait_s)
        self.written += added
        return added

    def summary(self, claim: RunClaim, *, started: float) -> RunSummary:
        return self.tally.summary(
            out=str(claim.out), manifest=str(manifest_path(claim.out)), planned=claim.problems * claim.config.samples,
            resumed=claim.resumed, written=self.written + claim.merged, elapsed_s=time.perf_counter() - started,
            interrupted=self.interrupted, stopped=self.stopped,
            peak_calls_in_flight=sum(s.peak_calls_in_flight for s in self.summaries),
            actor_queue_ms=combine_queue_waits(self.summaries))


async def generate_on_ray(
    config: GenerateConfig | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    shards: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 0.5,
    handle_signals: bool = False,
    command: list[str] | None = None,
    runtime_env: dict[str, Any] | None = None,
    max_retries: int = 3,
    lease_interval_s: float = 0.05,
    lock_wait_s: float = 60.0,
    log_level: str = "warning",
    log_json: bool = False,
    **options: Any,
) -> RunSummary:
    """:func:`~open_strawberry.pipeline.generate`, with the pairs made by Ray tasks; see
    :mod:`open_strawberry.distributed` for the design. Same config, same traces file, same
    summary and progress snapshots; records merged from a killed earlier run's shard files
    count as written by this one.

    ``address`` is the cluster (``None``: ``RAY_ADDRESS``, else a local cluster of the run's own
    on 127.0.0.1, never one found running; see :mod:`~open_strawberry.distributed.cluster`), its
    form checked before anything is touched (for a local cluster, also that the model servers
    can be reached: a clear error before the cluster's seconds of start-up); when Ray is already
    initialized in this process, that connection is used and left open. ``workers`` shards run
    at once (default: the cluster's CPUs), each as a task of one CPU; ``max_traces`` and
    ``max_concurrency`` are for the whole run and split evenly among them. ``shards`` (default:
    ``workers``) is how many parts the pairs are hashed into, at most one per pair to make and
    :data:`MAX_SHARDS` (and ``workers`` at most ``shards``; a value cut is logged). A shard
    whose worker dies is retried up to ``max_retries`` times by Ray, each attempt resuming from
    the shard's file. ``runtime_env`` goes to the tasks (Ray's packages, environment variables,
    working dir).

    Blocks until the run ends. With ``handle_signals``, a first Ctrl-C (or SIGTERM) cancels
    the shards' tasks, keeps what they wrote, and returns a summary marked ``interrupted``; a
    second stops at once (what was written is merged by the next run).
    """
    config, servers = _checked(config, options, workers=workers, shards=shards, max_retries=max_retries)
    target = cluster_target(address)
    if starts_local_cluster(target):  # its workers reach what this machine reaches: check before starting it
        for model in [*servers, *([config.verifier_model] if config.verifier_model else [])]:
            spec = parse_model(model)
            await check_reachable(spec.base_url, provider=spec.provider)
    started = time.perf_counter()
    count, problems = problem_source(config)
    config, problems_file, out = _absolute_paths(config)
    budgets = shared_budgets(rpm=config.rpm, tpm=config.tpm, input_tpm=config.input_tpm, output_tpm=config.output_tpm)
    outcome = _Outcome(lock_wait_s=lock_wait_s)
    async with AsyncExitStack() as stack:
        claim = await stack.enter_async_context(claim_run(
            config, problems=count, command=command, out=out, observe_merged=outcome.tally,
            merge_leftovers=partial(_merge_leftovers, out, lock_wait_s)))
        todo = sum(1 for _ in claim.pairs(problems))
        ray = await stack.enter_async_context(open_cluster(target)) if todo else None
        workers, shards = _sizes(ray, workers, shards, todo)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        run = _Options(
            config=config, out=out, run_id=run_id, run_dir=_shard_dir(out) / run_id, workers=workers,
            shards=shards, servers=servers, budgets=budgets, problems_file=problems_file, todo=todo,
            started=started, on_progress=on_progress, progress_every_s=progress_every_s,
            handle_signals=handle_signals, runtime_env=runtime_env, max_retries=max_retries,
            lease_interval_s=lease_interval_s, lock_wait_s=lock_wait_s, log_level=log_level, log_json=log_json)
        claim.record_start(versions=run_versions(ray=getattr(ray, "__version__", "not used")), ray={
            "address": target.described, "workers": run.workers, "shards": run.shards, "servers": servers,
            "run_id": run_id, "budgets": "shared through one pool (leases)" if budgets else None})
        if ray is not None:
            await _Run(ray, run, claim, outcome).run(problems)
        summary = outcome.summary(claim, started=started)
        claim.record_finish(summary)
    return summary


class _Run:
    """One driver run on Ray: what is running where, and what it has merged (its ``outcome``).

    ``ray`` is the imported module, connected; ``claim`` holds ``--out`` for the run."""

    def __init__(self, ray: ModuleType, options: _Options, claim: RunClaim, outcome: _Outcome) -> None:
        self.ray = ray
        self.options = options
        self.claim = claim
        self.outcome = outcome
        self.forced = False  # a second interrupt: stop without waiting for the shards
        self._running: dict[Any, int] = {}  # {ObjectRef: shard}
        self._shard_progress: dict[int, Progress] = {}

    # ------------------------------------------------------------------ the run

    async def run(self, problems: Callable[[], Iterator[Problem]]) -> None:
        """Make every pair still to make, ``options.workers`` shards at a time, merging each
        shard as it ends; stop what runs and merge what it wrote however this ends."""
        ray, options = self.ray, self.options
        remote: dict[str, Any] = {"runtime_env": options.runtime_env} if options.runtime_env else {}
        # first: the actor's process starts while the shards are planned (the first leases wait for it)
        coordinator = ray.remote(num_cpus=0, **remote)(Coordinator).remote(options.budgets)
        queue: list[int] = []  # shards not yet started
        try:
            plan = await anyio.to_thread.run_sync(_plan, problems, options.config.samples, self.claim.done,
                                                  options.shards)
            shipped = self._prepare()
            task = ray.remote(num_cpus=1, max_retries=options.max_retries, retry_exceptions=False, **remote)(run_shard)
            queue += [index for index in range(options.shards) if plan.pending[index]]
            await self._run_shards(queue, lambda index: task.remote(self._task(index, plan), coordinator, shipped),
                                   coordinator)
            if self.forced:
                raise InterruptedRunError("a second interrupt stopped the run at once; rerun the same command: it "
                                          "merges what the shards wrote and makes the rest")
            await self._report(coordinator)
        finally:
            with anyio.CancelScope(shield=True):
                await self._wind_down(coordinator)

    def _prepare(self) -> Any:
        """Make the run's folder and its marker; the problems file in Ray's object store when
        the workers may need it sent (None when there is no file, or it is too big to send)."""
        options = self.options
        options.run_dir.mkdir(parents=True, exist_ok=True)
        (options.run_dir / DRIVER_MARKER).write_text(options.run_id + "\n")
        if options.problems_file is not None and options.problems_file.stat().st_size <= SHIPPED_PROBLEMS_LIMIT:
            return self.ray.put(options.problems_file.read_bytes())
        return None

    async def _run_shards(self, queue: list[int], submit: Callable[[int], Any], coordinator: Any) -> None:
        """:meth:`_schedule` the shards, watching for Ctrl-C when asked to; an error of the run
        is raised as itself, not inside a group."""
        failed: OpenStrawberryError | None = None
        async with anyio.create_task_group() as tg:
            if self.options.handle_signals:
                await tg.start(self._watch_signals, queue, tg.cancel_scope)
            try:
                await self._schedule(queue, submit, coordinator)
            except OpenStrawberryError as exc:
                failed = exc
            tg.cancel_scope.cancel()
        if failed is not None:
            raise failed

    async def _schedule(self, queue: list[int], submit: Callable[[int], Any], coordinator: Any) -> None:
        """Keep ``workers`` shards running until none is left; merge each as it ends."""
        while queue or self._running:
            while queue and len(self._running) < self.options.workers and not self.outcome.interrupted:
                index = queue.pop(0)
                self._running[submit(index)] = index
            if not self._running:
                break
            ready, _ = await anyio.to_thread.run_sync(partial(
                self.ray.wait, list(self._running), num_returns=1, timeout=self.options.progress_every_s))
            for ref in ready:
                await self._collect(ref, self._running.pop(ref), queue)
            await self._report(coordinator)

    def _task(self, index: int, plan: _Plan) -> ShardTask:
        options = self.options
        base = options.config
        config = msgspec.structs.replace(
            base, model=server_for_shard(options.servers, index), max_traces=_share(base.max_traces, options.workers),
            max_concurrency=None if base.max_concurrency is None else _share(base.max_concurrency, options.workers),
            retry_failed=False)
        return ShardTask(run_id=options.run_id, index=index, shards=options.shards, config=config,
                         run_dir=str(options.run_dir), done=plan.done[index], budgets=options.budgets,
                         problems_name=options.problems_file.name if options.problems_file is not None else None,
                         progress_every_s=options.progress_every_s, lease_interval_s=options.lease_interval_s,
                         log_level=options.log_level, log_json=options.log_json)

    async def _collect(self, ref: Any, index: int, queue: list[int]) -> None:
        """A shard's task ended: merge its file, or say why it failed."""
        ray, shards = self.ray, self.options.shards
        try:
            result: ShardOutcome = await anyio.to_thread.run_sync(ray.get, ref)
        except ray.exceptions.TaskCancelledError:
            return  # interrupted: what it wrote is merged on the way out
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            self._stop_all(queue)
            if isinstance(cause, OpenStrawberryError):
                raise cause from None
            raise OpenStrawberryError(f"shard {index + 1} of {shards} failed: {exc}") from None
        except ray.exceptions.RayError as exc:
            self._stop_all(queue)
            raise OpenStrawberryError(
                f"shard {index + 1} of {shards} failed after {self.options.max_retries + 1} attempts "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'its worker died'}); "
                "rerun the same command to resume") from None
        outcome = self.outcome
        outcome.summaries.append(result.summary)
        if result.summary.interrupted:
            outcome.interrupted = True
        added = await anyio.to_thread.run_sync(self._merge, result)
        _log.info("shard_merged", shard=index + 1, shards=shards, records=added, out=str(self.options.out))
        if result.summary.stopped and outcome.stopped is None:
            outcome.stopped = result.summary.stopped
            self._stop_all(queue)

    def _merge(self, result: ShardOutcome) -> int:
        source = Path(result.path)
        if result.data is not None:  # the worker does not share our disk: its file came along
            source = self.options.run_dir / shard_file_name(result.index, self.options.shards)
            partial_file = source.with_name(f".{source.name}.partial")
            partial_file.write_bytes(result.data)
            partial_file.replace(source)
        return self.outcome.merge(self.claim, source)

    def _stop_all(self, queue: list[int]) -> None:
        queue.clear()
        for ref in self._running:
            self.ray.cancel(ref)

    async def _watch_signals(self, queue: list[int], scope: anyio.CancelScope, *,
                             task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            task_status.started()
            async for _ in received:
                if self.outcome.interrupted:
                    self.forced = True  # a second one: stop now; the next run merges what was written
                    scope.cancel()
                    return
                self.outcome.interrupted = True
                _log.warning("interrupted", hint="stopping the shards; a second interrupt stops at once")
                self._stop_all(queue)

    async def _report(self, coordinator: Any) -> None:
        if self.options.on_progress is None:
            return
        self._shard_progress = await anyio.to_thread.run_sync(self.ray.get, coordinator.progress.remote())
        self.options.on_progress(self.progress())

    def progress(self) -> Progress:
        return combine_progress(self._shard_progress, total=self.options.todo, resumed=self.claim.resumed,
                                elapsed_s=time.perf_counter() - self.options.started)

    async def _wind_down(self, coordinator: Any) -> None:
        """Stop what still runs, merge what the shards wrote, drop the run's folder."""
        ray = self.ray
        if self._running:
            for ref in self._running:
                ray.cancel(ref, force=self.forced)
            if not self.forced:
                await anyio.to_thread.run_sync(partial(ray.wait, list(self._running),
                                                       num_returns=len(self._running),
                                                       timeout=self.options.lock_wait_s))
            self._running.clear()
        ray.kill(coordinator)
        if self.forced:
            return
        try:
            await anyio.to_thread.run_sync(self._salvage_own)
        except ConfigurationError as exc:  # a worker still holds its file: the next run merges it
            _log.warning("shards_left_for_the_next_run", reason=str(exc))

    def _salvage_own(self) -> None:
        for source in sorted(self.options.run_dir.glob("shard-*.jsonl")):
            self.outcome.merge(self.claim, source)
        self.outcome.salvage(self.claim, self.options.run_dir.parent)
