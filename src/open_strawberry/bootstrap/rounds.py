"""A bootstrap round as a table of named stages (:data:`STAGES`), and the one runner that drives them.

Each :class:`Stage` has a name, a function that does its work and returns what the round's
``stages.json`` records for it, and a function that reads that record (this run's, or an
earlier run's) into the round's report and into what the next stages and rounds need. The
runner (:func:`run_stage`) does the rest once for every stage: skip it when ``stages.json``
says it finished, else announce it, run it, record it, announce it done.

The stages that need the round's model served come first; the server is started before them
only when one of them still has to run (:func:`run_round`), and stopped before the rest, so
the CPU is the trainer's. Serving is not a stage of the table: it holds the model up while the
served stages run, whenever one must, and records what it loaded (``"serve"``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import msgspec
import structlog

from open_strawberry.bootstrap.config import BootstrapConfig
from open_strawberry.bootstrap.report import EvalResult, RoundReport, wilson_interval
from open_strawberry.bootstrap.stages import ModelServer, ServedModel, Trainer, TrainRequest
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.traces.exports import export_dpo, export_sft
from open_strawberry.traces.files import read_traces, write_lines_atomically
from open_strawberry.traces.select import select_problems
from open_strawberry.traces.stats import trace_stats

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress, RunSummary

__all__ = ["STAGES", "Round", "Run", "Stage", "StageEvent", "run_round", "run_stage"]

_log = structlog.get_logger("open_strawberry.bootstrap")
_encoder = msgspec.json.Encoder()
Status = Literal["started", "done", "skipped"]
Record = dict[str, Any]  # what stages.json holds for a stage


@dataclass(frozen=True)
class StageEvent:
    """A stage of a round starting, finishing, or skipped as finished by an earlier run."""

    round: int
    stage: str
    status: Status
    detail: dict[str, Any]


@dataclass
class Run:
    """What the rounds of a run share: its settings and parts, its listeners, and what one
    round hands on to the next (the level reached, the problems selected so far)."""

    config: BootstrapConfig
    dir: Path
    server: ModelServer
    trainer: Trainer
    options: dict[str, Any]  # for every generate call
    level: int  # where the next evaluation starts
    on_stage: Callable[[StageEvent], None] | None = None
    on_progress: Callable[[int, str, Progress], None] | None = None
    progress_every_s: float = 10.0
    selected_before: list[Path] = field(default_factory=list)  # earlier rounds' selected.jsonl

    def tell(self, number: int, stage: str, status: Status, **detail: Any) -> None:
        _log.debug("bootstrap_stage", round=number, stage=stage, status=status, **detail)
        if self.on_stage is not None:
            self.on_stage(StageEvent(number, stage, status, detail))

    async def traces(self, this: Round, stage: str, problems: Path, out: Path, samples: int) -> RunSummary:
        """``samples`` traces per problem of ``problems`` into ``out`` from the served model
        (resuming ``out``), with the run's generate options."""
        from open_strawberry.pipeline import generate

        assert this.served is not None, f"{stage} runs only while the round's model is served"
        report = self.on_progress
        return await generate(problems=str(problems), model=this.served.model, out=str(out), samples=samples,
                              on_progress=None if report is None else lambda p: report(this.number, stage, p),
                              progress_every_s=self.progress_every_s, **self.options)


class Round:
    """A round's directory, its record of finished stages (``stages.json``), its report, and
    the model served while its served stages run (None before and after)."""

    def __init__(self, run: Path, number: int, model: Path, *, last: bool) -> None:
        self.number = number
        self.model = model
        self.last = last  # the round after the last training: it only evaluates
        self.dir = run / f"round-{number:02d}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "stages.json"
        self.stages: dict[str, Record] = json.loads(self.file.read_text())["stages"] if self.file.is_file() else {}
        self.report = RoundReport(round=number, model=str(model))
        self.served: ServedModel | None = None

    def done(self, stage: str, record: Record) -> None:
        self.stages[stage] = record
        payload = {"round": self.number, "stages": self.stages}
        write_lines_atomically(self.file, [(json.dumps(payload, indent=2) + "\n").encode()])


@dataclass(frozen=True)
class Stage:
    """A named stage: ``run`` does it and returns what ``stages.json`` records and what its
    "done" event says; ``read`` takes the record into the round and the run; ``started`` is what
    its "started" event says; ``served``: it needs the round's model served."""

    name: str
    run: Callable[[Run, Round], Awaitable[tuple[Record, dict[str, Any]]]]
    read: Callable[[Run, Round, Record], None]
    started: Callable[[Run, Round], dict[str, Any]] = lambda job, this: {}
    served: bool = False


async def run_stage(job: Run, this: Round, stage: Stage) -> None:
    """Skip ``stage`` if the round finished it before, else run and record it; then read its record."""
    if stage.name in this.stages:
        job.tell(this.number, stage.name, "skipped")
    else:
        job.tell(this.number, stage.name, "started", **stage.started(job, this))
        record, detail = await stage.run(job, this)
        this.done(stage.name, record)
        job.tell(this.number, stage.name, "done", **detail)
    stage.read(job, this, this.stages[stage.name])


async def run_round(job: Run, this: Round) -> RoundReport:
    """Run (or resume) the round ``this``: its stages in order, the served ones with the model
    served (only when one of them must run); the last round only evaluates."""
    stages = STAGES[:1] if this.last else STAGES
    started = time.perf_counter() - float(this.stages.get("time", {}).get("elapsed_s", 0.0))  # a resumed round adds
    async with AsyncExitStack() as stack:
        if any(stage.served and stage.name not in this.stages for stage in stages):
            this.served = await _serve(job, this, stack)
        for stage in (stage for stage in stages if stage.served):
            await run_stage(job, this, stage)
    this.served = None  # the server is stopped: the CPU is the trainer's
    for stage in (stage for stage in stages if not stage.served):
        await run_stage(job, this, stage)
    this.report.elapsed_s = time.perf_counter() - started
    this.done("time", {"elapsed_s": this.report.elapsed_s})
    return this.report


async def _serve(job: Run, this: Round, stack: AsyncExitStack) -> ServedModel:
    """Serve the round's model until ``stack`` closes; record what the server loaded."""
    job.tell(this.number, "serve", "started", model=str(this.model))
    served = await stack.enter_async_context(job.server.open(this.model, workdir=this.dir))
    job.tell(this.number, "serve", "done", file=served.file, loaded=served.loaded)
    this.done("serve", {"model": str(this.model), "file": served.file, "loaded": served.loaded})
    return served


async def _evaluate(job: Run, this: Round) -> tuple[Record, dict[str, Any]]:
    """Traces on the held-out problems of the level, moving up the ladder while they are mastered."""
    config, level, results = job.config, job.level, []
    while True:
        held_out = job.dir / "eval" / f"L{level}.jsonl"
        if not held_out.is_file():
            held_out.parent.mkdir(parents=True, exist_ok=True)
            _write_problems(held_out, _distinct(config, level, -1 - config.seed, config.eval_problems, set()))
        traces = this.dir / f"eval-L{level}.jsonl"
        await job.traces(this, "evaluate", held_out, traces, config.eval_samples)
        result = _evaluation(traces, level, config.eval_samples)
        results.append(result)
        if result.pass_at_1 < config.mastery or level >= config.top_level:
            break
        level += 1
    return ({"level": level, "results": msgspec.to_builtins(results)},
            {"level": level, "pass_at_1": {r.level: round(r.pass_at_1, 3) for r in results}})


def _read_evaluation(job: Run, this: Round, record: Record) -> None:
    job.level = this.report.level = int(record["level"])
    this.report.evaluations = [msgspec.convert(r, EvalResult) for r in record["results"]]
    serve = this.stages.get("serve", {})
    this.report.served = serve.get("loaded") or serve.get("file")


def _evaluation(traces: Path, level: int, k: int) -> EvalResult:
    stats = trace_stats(traces, ks=sorted({1, k}))
    low, high = wilson_interval(stats.correct, stats.traces)
    return EvalResult(level=level, problems=stats.problems, traces=stats.traces, correct=stats.correct,
                      pass_at_1=stats.correct / stats.traces if stats.traces else 0.0, low=low, high=high, k=k,
                      pass_at_k=stats.pass_at.get(k), traces_file=str(traces))


async def _generate(job: Run, this: Round) -> tuple[Record, dict[str, Any]]:
    """Traces on a pool of fresh problems of the level (neither held out nor selected before)."""
    config, level, number = job.config, job.level, this.number
    pool, traces = this.dir / "pool.jsonl", this.dir / "traces.jsonl"
    if not pool.is_file():
        skip = _ids(job.dir / "eval" / f"L{level}.jsonl").union(*(_ids(p) for p in job.selected_before))
        fresh = list(_distinct(config, level, config.seed * 1000 + number, config.pool, skip))
        if not fresh:  # a small level (one-digit sums: 81 problems) runs out
            raise ConfigurationError(
                f"round {number}: level {level} of {config.problems} has no fresh problem left "
                f"({len(skip)} are held out or were trained on); give fewer --eval-problems, a "
                "smaller --pool, or a lower --mastery so that the run moves up")
        _write_problems(pool, iter(fresh))
    summary = await job.traces(this, "generate", pool, traces, config.samples)
    stats = trace_stats(traces, ks=(1,))
    return ({"traces": stats.traces, "problems": stats.problems,
             "pass_rate": stats.correct / stats.traces if stats.traces else 0.0, "failed": summary.failed},
            {"traces": stats.traces, "correct": stats.correct})


def _read_generation(job: Run, this: Round, record: Record) -> None:
    this.report.pool_traces = int(record["traces"])
    this.report.pool_pass_rate = float(record["pass_rate"])


async def _select(job: Run, this: Round) -> tuple[Record, dict[str, Any]]:
    """The barely-solvable problems of the pool, none selected in an earlier round."""
    counts = select_problems(this.dir / "traces.jsonl", this.dir / "selected.jsonl", min_pass=job.config.min_pass,
                             max_pass=job.config.max_pass, exclude=[p for p in job.selected_before if p.is_file()])
    return {"selected": counts.written, "problems": counts.problems}, {"selected": counts.written,
                                                                       "of": counts.problems}


def _read_selection(job: Run, this: Round, record: Record) -> None:
    this.report.selected = int(record["selected"])
    job.selected_before.append(this.dir / "selected.jsonl")


async def _export(job: Run, this: Round) -> tuple[Record, dict[str, Any]]:
    """The selected problems' traces, as SFT rows and DPO pairs."""
    traces, chosen = this.dir / "traces.jsonl", this.dir / "traces.selected.jsonl"
    keep = _ids(this.dir / "selected.jsonl")
    write_lines_atomically(chosen, (_encoder.encode(r) + b"\n" for r in read_traces(traces) if r.problem_id in keep),
                           inputs=[traces])
    sft = export_sft(chosen, this.dir / "sft.jsonl", format=job.config.sft_format)
    dpo = export_dpo(chosen, this.dir / "dpo.jsonl")
    record = {"sft_rows": sft.written, "dpo_pairs": dpo.written}
    return record, record


def _read_export(job: Run, this: Round, record: Record) -> None:
    this.report.sft_rows = int(record["sft_rows"])
    this.report.dpo_pairs = int(record["dpo_pairs"])


async def _train(job: Run, this: Round) -> tuple[Record, dict[str, Any]]:
    """SFT, DPO, or SFT then DPO on the export (in a worker thread); the model trained last is
    the next round's, the round's own when there was nothing to train on."""
    trained, outcomes = this.model, []
    plan: list[tuple[Literal["sft", "dpo"], int | None]] = [("sft", this.report.sft_rows),
                                                             ("dpo", this.report.dpo_pairs)]
    for kind, rows in plan:
        if kind not in job.config.train.split("+"):
            continue
        if rows == 0:  # nothing to learn from: the model goes on unchanged
            _log.warning("bootstrap_nothing_to_train", round=this.number, kind=kind)
            continue
        request = TrainRequest(kind=kind, data=this.dir / f"{kind}.jsonl", model=trained, out=this.dir / kind,
                               round=this.number)
        outcome = await anyio.to_thread.run_sync(job.trainer, request)
        trained = Path(outcome.out)
        outcomes.append(msgspec.to_builtins(outcome))
    return ({"model": str(trained), "results": outcomes},
            {"model": str(trained), "loss": outcomes[-1]["train_loss"] if outcomes else None})


def _read_training(job: Run, this: Round, record: Record) -> None:
    if record["results"]:
        this.report.train_loss = record["results"][-1]["train_loss"]
        this.report.train_steps = sum(int(r["steps"]) for r in record["results"])
    this.report.trained_model = record["model"]


STAGES = (
    Stage("evaluate", _evaluate, _read_evaluation, started=lambda job, this: {"level": job.level}, served=True),
    Stage("generate", _generate, _read_generation, started=lambda job, this: {"level": job.level}, served=True),
    Stage("select", _select, _read_selection),
    Stage("export", _export, _read_export),
    Stage("train", _train, _read_training,
          started=lambda job, this: {"sft_rows": this.report.sft_rows, "dpo_pairs": this.report.dpo_pairs}),
)
"""A round's stages, in order (the served ones first); the last round runs only the first."""


def _content_id(problem: Problem, level: int) -> Problem:
    """The same problem gets the same id in every round (so earlier rounds' can be left out)."""
    digest = hashlib.blake2b(problem.prompt.encode(), digest_size=6).hexdigest()
    kind = str(problem.meta.get("kind", "problem"))
    return msgspec.structs.replace(problem, id=f"{kind}-L{level}-{digest}")


def _distinct(config: BootstrapConfig, level: int, seed: int, count: int, skip: set[str]) -> Iterator[Problem]:
    """Up to ``count`` distinct problems of ``level`` whose ids are not in ``skip`` (a level
    with few distinct problems, such as one-digit sums, may give fewer)."""
    seen = set(skip)
    made = 0
    for problem in builtin_problems(config.problems, count * 4 + 20, seed, level=level):
        problem = _content_id(problem, level)
        if problem.id in seen:
            continue
        seen.add(problem.id)
        made += 1
        yield problem
        if made == count:
            return


def _write_problems(path: Path, problems: Iterator[Problem]) -> int:
    return write_lines_atomically(path, (_encoder.encode(p) + b"\n" for p in problems))


def _ids(path: Path) -> set[str]:
    return {json.loads(line)["id"] for line in path.read_bytes().splitlines() if line.strip()} if path.is_file() \
        else set()
