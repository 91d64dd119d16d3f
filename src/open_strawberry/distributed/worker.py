"""One shard, in a Ray worker: the ordinary pipeline (:func:`~open_strawberry.pipeline.generate`)
in an event loop of its own, writing a traces file of its own.

:func:`run_shard` is the body of the shard's Ray task; this module imports no Ray (the handle
of the run's :class:`~open_strawberry.distributed.coordinator.Coordinator` is passed in).

- **Where it writes.** The driver made the run's folder and put a marker in it. A worker that
  sees the marker shares the driver's disk (one machine, NFS, a mounted bucket) and writes its
  shard file there, where the driver merges it. One that does not writes the same file in its
  own temporary folder and returns the file's bytes with its outcome; the driver writes them
  into its folder and merges them. A problems file the worker cannot see comes the same way.
- **Resume.** The shard file is an ordinary traces file: an attempt that Ray retries after its
  worker died resumes from it (pairs written are skipped, a torn last line is cut off), and
  the lock beside it keeps two attempts from writing it at once.
- **Budgets.** When the run has rate budgets, the limiter of this worker's backend keeps them
  in buckets fed by a :class:`~open_strawberry.distributed.budget.BudgetFeed` from the
  coordinator's pool, so they hold for the whole cluster (see that module).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

from open_strawberry.backends.models import create_backend, parse_model
from open_strawberry.distributed.budget import BudgetFeed
from open_strawberry.distributed.sharding import shard_file_name, shard_of
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig
from open_strawberry.log import configure_logging
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary, check_reachable, generate

__all__ = ["DRIVER_MARKER", "ShardOutcome", "ShardTask", "run_shard"]

DRIVER_MARKER = ".driver"  # in the run's folder, holding the run id: a worker that reads it shares the disk


@dataclass(frozen=True)
class ShardTask:
    """What one shard's task is given (pickled by Ray)."""

    run_id: str
    index: int
    shards: int
    config: GenerateConfig  # this shard's: its server, its share of max_traces and max_concurrency
    run_dir: str  # the driver's folder for this run's shard files
    done: frozenset[tuple[str, int]]  # pairs of this shard already in the traces file
    budgets: dict[str, float]  # {budget: per minute} shared through the coordinator; empty: none
    problems_name: str | None = None  # the problems file's name, when its bytes come along
    progress_every_s: float = 0.5
    lease_interval_s: float = 0.05
    log_level: str = "warning"
    log_json: bool = False


@dataclass(frozen=True)
class ShardOutcome:
    """What a finished shard returns: its summary, and where its records are."""

    index: int
    summary: RunSummary
    path: str
    data: bytes | None  # the shard file, when the worker does not share the driver's disk


def run_shard(task: ShardTask, coordinator: Any, problems: bytes | None) -> ShardOutcome:
    """Make the shard's pairs; the body of its Ray task (blocks until the shard is done)."""
    configure_logging(json=task.log_json, level=task.log_level)
    return anyio.run(_run_shard, task, coordinator, problems)


def shares_driver_disk(run_dir: Path, run_id: str) -> bool:
    try:
        return (run_dir / DRIVER_MARKER).read_text().strip() == run_id
    except OSError:
        return False


def _place(task: ShardTask, problems: bytes | None) -> tuple[GenerateConfig, Path, bool]:
    """(the shard's config, its traces file, whether that is on the driver's disk); writes the
    problems file that came along when this worker cannot see the driver's."""
    shared = shares_driver_disk(Path(task.run_dir), task.run_id)
    folder = Path(task.run_dir) if shared else Path(tempfile.gettempdir()) / "open-strawberry-shards" / task.run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shard_file_name(task.index, task.shards)
    config = msgspec.structs.replace(task.config, out=str(path))
    if not shared and problems is not None and task.problems_name is not None:
        copy = folder / task.problems_name
        if not copy.exists():
            partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
            partial.write_bytes(problems)
            os.replace(partial, copy)
        config = msgspec.structs.replace(config, problems=str(copy))
    return config, path, shared


def _take_back(path: Path) -> bytes:
    """The shard file's bytes, for the driver; the file is removed (the driver keeps it now)."""
    data = path.read_bytes()
    with contextlib.suppress(OSError):
        path.unlink()
    return data


async def _run_shard(task: ShardTask, coordinator: Any, problems: bytes | None) -> ShardOutcome:
    config, path, shared = _place(task, problems)

    def mine(problem_id: str, sample: int) -> bool:
        return shard_of(problem_id, sample, task.shards) == task.index and (problem_id, sample) not in task.done

    def report(progress: Progress) -> None:
        coordinator.report.remote(task.index, progress)  # fire and forget: the next one replaces it

    command = [f"open-strawberry generate --ray: shard {task.index + 1} of {task.shards}, run {task.run_id}"]
    options: dict[str, Any] = {"pairs": mine, "on_progress": report, "progress_every_s": task.progress_every_s,
                               "command": command}
    if task.budgets:
        summary = await _generate_with_shared_budgets(config, task, coordinator, options)
    else:
        summary = await generate(config, **options)
    data = None if shared else _take_back(path)
    return ShardOutcome(index=task.index, summary=summary, path=str(path), data=data)


class _RayLeases:
    """A :class:`~open_strawberry.distributed.budget.LeaseSource` over the coordinator actor
    (awaiting a Ray object reference needs the asyncio backend, which ``anyio.run`` uses)."""

    def __init__(self, coordinator: Any, holder: str) -> None:
        self.coordinator = coordinator
        self.holder = holder

    async def lease(self, wanted: dict[str, float]) -> dict[str, float]:
        granted: dict[str, float] = await self.coordinator.lease.remote(wanted, self.holder)
        return granted

    async def give_back(self, amounts: dict[str, float]) -> None:
        await self.coordinator.give_back.remote(amounts)


async def _generate_with_shared_budgets(config: GenerateConfig, task: ShardTask, coordinator: Any,
                                        options: dict[str, Any]) -> RunSummary:
    """``generate`` with a backend whose limiter takes the run's budgets from the pool."""
    spec = parse_model(config.model)
    await check_reachable(spec.base_url, provider=spec.provider)
    feed = BudgetFeed(_RayLeases(coordinator, f"shard-{task.index}"), task.budgets, interval_s=task.lease_interval_s)
    limiter = Limiter(LimiterConfig(max_concurrency=config.max_concurrency), buckets=feed.buckets)
    backend = LimitedBackend(create_backend(spec, api_key_env=config.api_key_env, timeout_s=config.timeout_s,
                                            call_timeout_s=config.call_timeout_s), limiter)
    async with backend, anyio.create_task_group() as tg:
        await tg.start(feed.run, limiter)
        try:
            summary = await generate(config, backend=backend, **options)
        finally:
            tg.cancel_scope.cancel()
            await feed.aclose()
    return summary
