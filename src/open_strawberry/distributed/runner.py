"""The driver of a run on Ray: :func:`generate_on_ray`.

It does what :func:`~open_strawberry.pipeline.generate` does before any call (checks the
options and the whole problems file, locks ``--out``, resumes it, writes the manifest), then
hands the pairs still to make to Ray tasks, one shard each, merges each shard's file into
``--out`` as the shard finishes, and sums the shards' progress into the one display. Ray is
imported here, when a run starts, and only then.
"""

from __future__ import annotations

import math
import platform
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import anyio
import anyio.abc
import msgspec
import structlog

from open_strawberry.distributed.budget import shared_budgets
from open_strawberry.distributed.coordinator import Coordinator, combine_progress
from open_strawberry.distributed.merge import merge_shard, salvage_shards
from open_strawberry.distributed.sharding import server_for_shard, shard_file_name, shard_of, split_servers
from open_strawberry.distributed.worker import DRIVER_MARKER, ShardOutcome, ShardTask, run_shard
from open_strawberry.errors import ConfigurationError, InterruptedRunError, OpenStrawberryError
from open_strawberry.messages import Problem
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary
from open_strawberry.pipeline.run import problem_source
from open_strawberry.pipeline.summary import Tally
from open_strawberry.redact import redact_data
from open_strawberry.traces.files import finished_pairs, manifest_path, set_aside_failed, write_manifest
from open_strawberry.traces.lock import locked_traces_file

__all__ = ["INSTALL_HINT", "generate_on_ray", "import_ray"]

INSTALL_HINT = "pip install 'open-strawberry[ray]'"
SHIPPED_PROBLEMS_LIMIT = 64 * 2**20  # a problems file up to this size goes to workers through Ray's object store

_log = structlog.get_logger("open_strawberry.distributed")


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ConfigurationError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError(f"running on Ray needs the ray package: {INSTALL_HINT}") from None
    return cast(ModuleType, ray)


class _Plan(msgspec.Struct, frozen=True):
    pending: list[int]  # per shard: pairs to make
    done: list[frozenset[tuple[str, int]]]  # per shard: its pairs already in --out


def _pairs(problems: Callable[[], Iterator[Problem]], samples: int) -> Iterator[tuple[str, int]]:
    for problem in problems():
        for sample in range(samples):
            yield problem.id, sample


def _plan(problems: Callable[[], Iterator[Problem]], samples: int, done: set[tuple[str, int]], shards: int) -> _Plan:
    pending = [0] * shards
    for pair in _pairs(problems, samples):
        if pair not in done:
            pending[shard_of(*pair, shards)] += 1
    mine: list[set[tuple[str, int]]] = [set() for _ in range(shards)]
    for pair in done:
        mine[shard_of(*pair, shards)].add(pair)
    return _Plan(pending=pending, done=[frozenset(pairs) for pairs in mine])


def _absolute(path: str) -> Path:
    return Path(path).absolute()  # workers start elsewhere: they need paths from the root


def _absolute_problems(config: GenerateConfig) -> tuple[GenerateConfig, Path | None]:
    """``config`` with its problems file (if it names one) from the root, and that file."""
    path = Path(config.problems)
    if not path.is_file():
        return config, None
    return msgspec.structs.replace(config, problems=str(path.absolute())), path.absolute()


def _claim_traces_file(out: Path, holder: str, stack: ExitStack, *, retry_failed: bool,
                       lock_wait_s: float) -> set[tuple[str, int]]:
    """Lock ``out`` for the run (released by ``stack``), merge into it what an earlier run left
    in shard files (a killed driver, an interrupt), and return the pairs it holds."""
    try:
        if out.is_dir():
            raise ConfigurationError(f"--out {out} is a directory: name a traces file, e.g. {out / 'traces.jsonl'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        stack.enter_context(locked_traces_file(out, holder=holder))
        done = finished_pairs(out)  # repairs a torn last line
        salvaged = salvage_shards(_shard_dir(out), out, done, lock_wait_s=lock_wait_s)
        if salvaged:
            _log.info("merged_leftover_shards", records=salvaged, out=str(out))
        if retry_failed and done and set_aside_failed(out):
            done = finished_pairs(out)
        return done
    except OSError as exc:
        raise ConfigurationError(f"cannot write the traces file {out}: {exc.strerror or exc}") from None


def _shard_dir(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def _versions(ray: ModuleType | None) -> dict[str, str]:
    found = {"python": platform.python_version(), "ray": getattr(ray, "__version__", "not used")}
    for package in ("open-strawberry", "anyio", "aiohttp", "msgspec"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _share(value: int, workers: int) -> int:
    return max(1, math.ceil(value / workers))


def _combine_queue_waits(summaries: list[RunSummary]) -> dict[str, dict[str, float]]:
    """Per actor over the shards: handled summed, mean and p50 weighted by handled, p99 the worst."""
    combined: dict[str, dict[str, float]] = {}
    for summary in summaries:
        for actor, figures in summary.actor_queue_ms.items():
            into = combined.setdefault(actor, {"mean": 0.0, "p50": 0.0, "p99": 0.0, "handled": 0.0})
            handled = figures.get("handled", 0.0)
            total = into["handled"] + handled
            if total:
                for key in ("mean", "p50"):
                    into[key] = (into[key] * into["handled"] + figures.get(key, 0.0) * handled) / total
            into["p99"] = max(into["p99"], figures.get("p99", 0.0))
            into["handled"] = total
    return combined


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
    summary and progress snapshots.

    ``address`` is the cluster (``None``: Ray's own choice: ``RAY_ADDRESS``, else a cluster
    started on this machine, else a new local one); when Ray is already initialized in this
    process, that connection is used and left open. ``workers`` shards run at once (default:
    the cluster's CPUs), each as a task of one CPU; ``max_traces`` and ``max_concurrency`` are
    for the whole run and split evenly among them. ``shards`` (default: ``workers``) is how
    many parts the pairs are hashed into. A shard whose worker dies is retried up to
    ``max_retries`` times by Ray, each attempt resuming from the shard's file.
    ``runtime_env`` goes to the tasks (Ray's packages, environment variables, working dir).

    Blocks until the run ends. With ``handle_signals``, a first Ctrl-C (or SIGTERM) cancels
    the shards' tasks, keeps what they wrote, and returns a summary marked ``interrupted``; a
    second stops at once (what was written is merged by the next run).
    """
    try:
        config = msgspec.structs.replace(config or GenerateConfig(), **options)
    except TypeError as exc:
        raise ConfigurationError(f"generate_on_ray: {exc}") from None
    config.check()
    servers = split_servers(config.model)
    for name, value in {"workers": workers, "shards": shards, "max_retries": max_retries}.items():
        if value is not None and value < (0 if name == "max_retries" else 1):
            raise ConfigurationError(f"{name} must be at least {0 if name == 'max_retries' else 1}, got {value}")
    started = time.perf_counter()
    count, problems = problem_source(config)
    config, problems_file = _absolute_problems(config)
    out = _absolute(config.out)
    budgets = shared_budgets(rpm=config.rpm, tpm=config.tpm, input_tpm=config.input_tpm, output_tpm=config.output_tpm)
    holder = " ".join(command or sys.argv)

    with ExitStack() as stack:
        done = await anyio.to_thread.run_sync(partial(_claim_traces_file, out, holder, stack,
                                                      retry_failed=config.retry_failed, lock_wait_s=lock_wait_s))
        resumed = len(done)
        todo = sum(1 for pair in _pairs(problems, config.samples) if pair not in done)

        ray: ModuleType | None = None
        we_started = False
        manifest: dict[str, Any] = {
            "command": command or sys.argv, "config": msgspec.to_builtins(config), "started_at": time.time(),
            "problems": count, "samples": config.samples, "resumed_records": resumed}
        try:
            if todo:
                ray = import_ray()
                if not ray.is_initialized():
                    ray.init(address=address or None)
                    we_started = True
                workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
                shards = shards or workers
            workers, shards = workers or 1, shards or 1
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            manifest.update(versions=_versions(ray), ray={
                "address": address, "workers": workers, "shards": shards, "servers": servers, "run_id": run_id,
                "budgets": "shared through one pool (leases)" if budgets else None})
            write_manifest(out, redact_data(manifest))
            run = _Run(ray, config, out=out, run_dir=_shard_dir(out) / run_id, run_id=run_id, workers=workers,
                       shards=shards, servers=servers, budgets=budgets, done=done, resumed=resumed, todo=todo,
                       problems_file=problems_file, started=started,
                       on_progress=on_progress, progress_every_s=progress_every_s, runtime_env=runtime_env,
                       max_retries=max_retries, lease_interval_s=lease_interval_s, lock_wait_s=lock_wait_s,
                       log_level=log_level, log_json=log_json)
            if todo:
                await run.run(problems, handle_signals=handle_signals)
        finally:
            if we_started and ray is not None:
                ray.shutdown()
        summary = run.summary(planned=count * config.samples, manifest=str(manifest_path(out)))
        write_manifest(out, redact_data({**manifest, "finished_at": time.time(),
                                         "summary": msgspec.to_builtins(summary)}))
    return summary


class _Run:
    """One driver run's state: what is running where, the tally of merged records."""

    def __init__(self, ray: ModuleType | None, config: GenerateConfig, *, out: Path, run_dir: Path, run_id: str,
                 workers: int, shards: int, servers: list[str], budgets: dict[str, float],
                 done: set[tuple[str, int]], resumed: int, todo: int, problems_file: Path | None, started: float,
                 on_progress: Callable[[Progress], None] | None, progress_every_s: float,
                 runtime_env: dict[str, Any] | None, max_retries: int, lease_interval_s: float, lock_wait_s: float,
                 log_level: str, log_json: bool) -> None:
        self.ray = ray
        self.config = config
        self.out = out
        self.run_dir = run_dir
        self.run_id = run_id
        self.workers = workers
        self.shards = shards
        self.servers = servers
        self.budgets = budgets
        self.done = done
        self.resumed = resumed
        self.todo = todo
        self.problems_file = problems_file
        self.started = started
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.runtime_env = runtime_env
        self.max_retries = max_retries
        self.lease_interval_s = lease_interval_s
        self.lock_wait_s = lock_wait_s
        self.log_level = log_level
        self.log_json = log_json
        self.tally = Tally()
        self.written = 0
        self.summaries: list[RunSummary] = []
        self.interrupted = False
        self.forced = False  # a second interrupt: stop without waiting for the shards
        self.stopped: str | None = None
        self._running: dict[Any, int] = {}  # {ObjectRef: shard}
        self._shard_progress: dict[int, Progress] = {}

    # ------------------------------------------------------------------ the run

    async def run(self, problems: Callable[[], Iterator[Problem]], *, handle_signals: bool) -> None:
        ray = self.ray
        assert ray is not None
        options: dict[str, Any] = {"runtime_env": self.runtime_env} if self.runtime_env else {}
        # first: the actor's process starts while the shards are planned (the first leases wait for it)
        coordinator = ray.remote(num_cpus=0, **options)(Coordinator).remote(self.budgets)
        queue: list[int] = []  # shards not yet started
        try:
            plan = await anyio.to_thread.run_sync(_plan, problems, self.config.samples, self.done, self.shards)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / DRIVER_MARKER).write_text(self.run_id + "\n")
            shipped = None
            if self.problems_file is not None and self.problems_file.stat().st_size <= SHIPPED_PROBLEMS_LIMIT:
                shipped = ray.put(self.problems_file.read_bytes())
            task = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False, **options)(run_shard)
            queue += [index for index in range(self.shards) if plan.pending[index]]
            failed: OpenStrawberryError | None = None
            async with anyio.create_task_group() as tg:
                if handle_signals:
                    await tg.start(self._watch_signals, queue, tg.cancel_scope)
                try:
                    await self._schedule(queue, lambda index: task.remote(
                        self._task(index, plan), coordinator, shipped if self.problems_file is not None else None),
                        coordinator)
                except OpenStrawberryError as exc:  # raised below, not as a group of one
                    failed = exc
                tg.cancel_scope.cancel()
            if failed is not None:
                raise failed
            if self.forced:
                raise InterruptedRunError("a second interrupt stopped the run at once; rerun the same command: it "
                                          "merges what the shards wrote and makes the rest")
            await self._report(coordinator)
        finally:
            with anyio.CancelScope(shield=True):
                await self._wind_down(coordinator)

    async def _schedule(self, queue: list[int], submit: Callable[[int], Any], coordinator: Any) -> None:
        """Keep ``workers`` shards running until none is left; merge each as it ends."""
        assert self.ray is not None
        while queue or self._running:
            while queue and len(self._running) < self.workers and not self.interrupted:
                index = queue.pop(0)
                self._running[submit(index)] = index
            if not self._running:
                break
            ready, _ = await anyio.to_thread.run_sync(partial(
                self.ray.wait, list(self._running), num_returns=1, timeout=self.progress_every_s))
            for ref in ready:
                await self._collect(ref, self._running.pop(ref), queue)
            await self._report(coordinator)

    def _task(self, index: int, plan: _Plan) -> ShardTask:
        config = msgspec.structs.replace(
            self.config, model=server_for_shard(self.servers, index),
            max_traces=_share(self.config.max_traces, self.workers),
            max_concurrency=None if self.config.max_concurrency is None else _share(self.config.max_concurrency,
                                                                                    self.workers),
            retry_failed=False)
        return ShardTask(run_id=self.run_id, index=index, shards=self.shards, config=config,
                         run_dir=str(self.run_dir), done=plan.done[index], budgets=self.budgets,
                         problems_name=self.problems_file.name if self.problems_file is not None else None,
                         progress_every_s=self.progress_every_s, lease_interval_s=self.lease_interval_s,
                         log_level=self.log_level, log_json=self.log_json)

    async def _collect(self, ref: Any, index: int, queue: list[int]) -> None:
        """A shard's task ended: merge its file, or say why it failed."""
        ray = self.ray
        assert ray is not None
        try:
            outcome: ShardOutcome = await anyio.to_thread.run_sync(ray.get, ref)
        except ray.exceptions.TaskCancelledError:
            return  # interrupted: what it wrote is merged on the way out
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            self._stop_all(queue)
            if isinstance(cause, OpenStrawberryError):
                raise cause from None
            raise OpenStrawberryError(f"shard {index + 1} of {self.shards} failed: {exc}") from None
        except ray.exceptions.RayError as exc:
            self._stop_all(queue)
            raise OpenStrawberryError(
                f"shard {index + 1} of {self.shards} failed after {self.max_retries + 1} attempts "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'its worker died'}); "
                "rerun the same command to resume") from None
        self.summaries.append(outcome.summary)
        if outcome.summary.interrupted:
            self.interrupted = True
        added = await anyio.to_thread.run_sync(self._merge, outcome)
        _log.info("shard_merged", shard=index + 1, shards=self.shards, records=added, out=str(self.out))
        if outcome.summary.stopped and self.stopped is None:
            self.stopped = outcome.summary.stopped
            self._stop_all(queue)

    def _merge(self, outcome: ShardOutcome) -> int:
        source = Path(outcome.path)
        if outcome.data is not None:  # the worker does not share our disk: its file came along
            source = self.run_dir / shard_file_name(outcome.index, self.shards)
            partial_file = source.with_name(f".{source.name}.partial")
            partial_file.write_bytes(outcome.data)
            partial_file.replace(source)
        added = merge_shard(source, self.out, self.done, observe=self.tally, lock_wait_s=self.lock_wait_s)
        self.written += added
        return added

    def _stop_all(self, queue: list[int]) -> None:
        queue.clear()
        assert self.ray is not None
        for ref in self._running:
            self.ray.cancel(ref)

    async def _watch_signals(self, queue: list[int], scope: anyio.CancelScope, *,
                             task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            task_status.started()
            async for _ in received:
                if self.interrupted:
                    self.forced = True  # a second one: stop now; the next run merges what was written
                    scope.cancel()
                    return
                self.interrupted = True
                _log.warning("interrupted", hint="stopping the shards; a second interrupt stops at once")
                self._stop_all(queue)

    async def _report(self, coordinator: Any) -> None:
        if self.on_progress is None:
            return
        assert self.ray is not None
        self._shard_progress = await anyio.to_thread.run_sync(self.ray.get, coordinator.progress.remote())
        self.on_progress(self.progress())

    def progress(self) -> Progress:
        return combine_progress(self._shard_progress, total=self.todo, resumed=self.resumed,
                                elapsed_s=time.perf_counter() - self.started)

    async def _wind_down(self, coordinator: Any) -> None:
        """Stop what still runs, merge what the shards wrote, drop the run's folder."""
        ray = self.ray
        assert ray is not None
        if self._running:
            for ref in self._running:
                ray.cancel(ref, force=self.forced)
            if not self.forced:
                await anyio.to_thread.run_sync(partial(ray.wait, list(self._running),
                                                       num_returns=len(self._running), timeout=self.lock_wait_s))
            self._running.clear()
        ray.kill(coordinator)
        if self.forced:
            return
        try:
            self.written += await anyio.to_thread.run_sync(partial(
                self._salvage_own, lock_wait_s=self.lock_wait_s))
        except ConfigurationError as exc:  # a worker still holds its file: the next run merges it
            _log.warning("shards_left_for_the_next_run", reason=str(exc))

    def _salvage_own(self, *, lock_wait_s: float) -> int:
        added = 0
        for source in sorted(self.run_dir.glob("shard-*.jsonl")):
            added += merge_shard(source, self.out, self.done, observe=self.tally, lock_wait_s=lock_wait_s)
        salvage_shards(self.run_dir.parent, self.out, self.done, lock_wait_s=lock_wait_s)
        return added

    # ------------------------------------------------------------------ the end

    def summary(self, *, planned: int, manifest: str) -> RunSummary:
        return self.tally.summary(
            out=str(self.out), manifest=manifest, planned=planned, resumed=self.resumed, written=self.written,
            elapsed_s=time.perf_counter() - self.started, interrupted=self.interrupted,
            stopped=self.stopped, peak_calls_in_flight=sum(s.peak_calls_in_flight for s in self.summaries),
            actor_queue_ms=_combine_queue_waits(self.summaries))
