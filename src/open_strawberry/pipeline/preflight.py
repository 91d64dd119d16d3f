"""What every runner does to its traces file before the first call and after the last.

:func:`claim_run` is entered by :func:`~open_strawberry.pipeline.generate` and by the Ray
driver (:func:`~open_strawberry.distributed.generate_on_ray`) alike, with their exit stacks::

    claim = await stack.enter_async_context(claim_run(config, problems=count, command=command))
    claim.record_start(server_capacity=...)          # <out>.manifest.json, redacted
    for problem, sample in claim.pairs(problems): ...  # the pairs still to make
    claim.record_finish(summary)                     # the manifest again, with the summary

Claiming, in this order: lock ``--out`` for the run (a second run on it is refused, naming
the holder); read the pairs it holds, cutting off a torn last line; merge what an earlier,
killed run left elsewhere (the Ray driver's shard files; those records count as this run's
work); refuse to resume a file whose records were made with other settings
(:data:`RECORD_SETTINGS`, read from the manifest); with ``--retry-failed``, move the failed
records aside so their pairs run again. The lock is released when the claim's context exits,
however it exits.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog

from open_strawberry._version import __version__
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem, TraceRecord
from open_strawberry.pipeline.config import GenerateConfig
from open_strawberry.pipeline.summary import RunSummary
from open_strawberry.redact import redact_data
from open_strawberry.traces.files import failed_path, finished_pairs, manifest_path, set_aside_failed, write_manifest
from open_strawberry.traces.lock import locked_traces_file

__all__ = ["RECORD_SETTINGS", "RUN_PACKAGES", "LeftoverMerger", "Pair", "RunClaim", "claim_run", "pairs_to_make",
           "run_versions"]

_log = structlog.get_logger("open_strawberry.generate")

Pair = tuple[str, int]  # (problem_id, sample): what one record is the trace of
# merges an earlier run's leftovers into the claimed file: adds their pairs to ``done`` and hands
# each record it appends to ``observe``
LeftoverMerger = Callable[[set[Pair], Callable[[TraceRecord], None]], object]
RUN_PACKAGES = ("open-strawberry", "anyio", "aiohttp", "msgspec", "structlog", "openai", "anthropic")
# The settings that change what a record is: who answers (the model, the critic; a model string
# counts without its server URLs, so a model moved to another server is the same model), how the
# trace is prompted and sampled (the strategy and its cadence, turn and token caps, temperature,
# the seed, which also picks builtin problems and trace ids) and how it is graded. A resume that
# changes one would mix two kinds of trace in one file. Not here: what only changes speed or
# robustness (max_traces, max_concurrency, rates, timeouts, the key's variable), which pairs are
# made (problems, samples, retry_failed: a run may be extended), the run's verdict
# (max_failed_share), and how problems are read.
RECORD_SETTINGS = ("model", "verifier_model", "strategy", "max_turns", "final_every", "verify_every", "verify_window",
                   "veto_below", "temperature", "max_tokens", "max_trace_tokens", "last_call", "seed", "grader",
                   "answer_fallback")


def run_versions(packages: Sequence[str] = RUN_PACKAGES, **known: str) -> dict[str, str]:
    """``{"python": ..., package: version or "not installed", ...}`` for the manifest, plus the
    ``known`` versions as given (say ``ray="2.40.0"``); this package is named ``open-strawberry``
    there, whatever its distribution's name."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = __version__ if package == "open-strawberry" else version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return {**found, **known}


def pairs_to_make(problems: Callable[[], Iterable[Problem]], samples: int, *, done: Container[Pair] = frozenset(),
                  keep: Callable[[str, int], bool] | None = None) -> Iterator[tuple[Problem, int]]:
    """Each ``(problem, sample)`` (each problem of ``problems()``, each sample below ``samples``),
    in file order, that is not in ``done`` and that ``keep`` (when given: one share of a bigger
    run) accepts."""
    for problem in problems():
        for sample in range(samples):
            if (problem.id, sample) not in done and (keep is None or keep(problem.id, sample)):
                yield problem, sample


@dataclass
class RunClaim:
    """A runner's hold on its traces file, from the preflight to the summary (see the module).

    ``done`` holds the pairs in the file (a Ray driver adds those it merges); ``resumed`` is how
    many of them were there before this run; ``merged`` how many records of an earlier, killed
    run were merged in while claiming (and shown to the claim's observer)."""

    config: GenerateConfig
    out: Path
    command: list[str]
    problems: int
    done: set[Pair] = field(default_factory=set)
    resumed: int = 0
    merged: int = 0
    started_at: float = field(default_factory=time.time)
    manifest: dict[str, Any] = field(default_factory=dict)  # as written at the start, redacted

    def pairs(self, problems: Callable[[], Iterable[Problem]], *,
              keep: Callable[[str, int], bool] | None = None) -> Iterator[tuple[Problem, int]]:
        """The pairs this run still has to make (see :func:`pairs_to_make`)."""
        return pairs_to_make(problems, self.config.samples, done=self.done, keep=keep)

    def record_start(self, *, versions: dict[str, str] | None = None, **fields: Any) -> Path:
        """Write the manifest beside the traces file: the command, the config, the versions, the
        problems and samples, the records resumed, and the runner's own ``fields``. Every string
        is redacted (a key typed into the command line, a URL's password)."""
        self.manifest = redact_data({
            "command": self.command, "config": msgspec.to_builtins(self.config),
            "versions": versions if versions is not None else run_versions(), "started_at": self.started_at,
            "problems": self.problems, "samples": self.config.samples, "resumed_records": self.resumed, **fields})
        return write_manifest(self.out, self.manifest)

    def record_finish(self, summary: RunSummary) -> Path:
        """Write the manifest again, with the time the run finished and its summary."""
        return write_manifest(self.out, redact_data({**self.manifest, "finished_at": time.time(),
                                                     "summary": msgspec.to_builtins(summary)}))


@contextlib.asynccontextmanager
async def claim_run(config: GenerateConfig, *, problems: int, command: Sequence[str] | None = None,
                    out: Path | None = None, merge_leftovers: LeftoverMerger | None = None,
                    observe_merged: Callable[[TraceRecord], None] | None = None) -> AsyncIterator[RunClaim]:
    """Claim ``out`` (default ``config.out``) for a run of ``config`` over ``problems``
    problems, as the module describes, and hold it for the block.

    The file work runs in a worker thread (a large file is read whole, a merge may wait for
    another process's lock). ``merge_leftovers`` is called with the lock held, before failed
    records are set aside; each record it merges and that stays goes to ``observe_merged``.
    One ConfigurationError (naming the file) when the file cannot be claimed; nothing else
    is touched before the lock is held.
    """
    claim = RunClaim(config=config, out=out or Path(config.out), command=list(command or sys.argv),
                     problems=problems)
    with ExitStack() as stack:
        await anyio.to_thread.run_sync(_claim, claim, stack, merge_leftovers, observe_merged)
        yield claim


def _claim(claim: RunClaim, stack: ExitStack, merge_leftovers: LeftoverMerger | None,
           observe_merged: Callable[[TraceRecord], None] | None) -> None:
    out, retry_failed = claim.out, claim.config.retry_failed
    try:
        if out.is_dir():
            raise ConfigurationError(f"--out {out} is a directory: name a traces file, e.g. {out / 'traces.jsonl'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        stack.enter_context(locked_traces_file(out, holder=" ".join(claim.command)))
        claim.done = finished_pairs(out)  # first: repairs a torn last line, and checks every line
        if merge_leftovers is not None:
            def kept(record: TraceRecord) -> None:
                if retry_failed and record.status == "error":
                    return  # set aside below: its pair is made again
                claim.merged += 1
                if observe_merged is not None:
                    observe_merged(record)

            merge_leftovers(claim.done, kept)
        if claim.done:
            _check_same_settings(claim)
        if retry_failed and claim.done:
            moved = set_aside_failed(out)
            if moved:
                _log.info("retrying_failed_traces", count=moved, kept_in=str(failed_path(out)))
                claim.done = finished_pairs(out)
        claim.resumed = len(claim.done) - claim.merged
    except OSError as exc:
        raise ConfigurationError(f"cannot write the traces file {out}: {exc.strerror or exc}") from None


def _check_same_settings(claim: RunClaim) -> None:
    """ConfigurationError, naming each setting of :data:`RECORD_SETTINGS` and both its values,
    when the manifest beside ``claim.out`` says its records were made with other values. A file
    without a manifest, and a setting an older manifest does not name, are not compared."""
    try:
        before = json.loads(manifest_path(claim.out).read_bytes())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not isinstance(before, dict):
        return
    now = redact_data(msgspec.to_builtins(claim.config))  # the manifest holds the config redacted
    changed = [f"{name} {before[name]!r} there, {now[name]!r} now" for name in RECORD_SETTINGS
               if name in before and _meaning(name, before[name]) != _meaning(name, now[name])]
    if changed:
        raise ConfigurationError(
            f"{claim.out} holds traces made with other settings ({'; '.join(changed)}): resuming would mix them in one "
            "file; write this run to another --out, or resume with the settings the file was made with")


def _meaning(name: str, value: Any) -> Any:
    """What a setting's value says about a record: a model string without its server URLs."""
    if name in ("model", "verifier_model") and isinstance(value, str):
        return re.split(r"@(?=https?://)", value, maxsplit=1)[0]
    return value
