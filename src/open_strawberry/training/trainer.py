"""``train``: SFT or DPO with TRL, on the CPU by default, resumable, everything written to one folder.

``out`` ends up holding::

    config.json, model.safetensors, tokenizer...   the trained model (LoRA merged in), fp32
    train_config.json                              the TrainConfig (a rerun must match it)
    train_data.jsonl                               the rows trained on, mix included, shuffled
    losses.jsonl                                   {"step", "loss", "learning_rate", "epoch"} per logged step
                                                   (transformers' log history, written when training ends)
    train_result.json                              the TrainResult, written last: the run is done
    checkpoints/checkpoint-N/                      while it runs (kept with keep_checkpoints)
    incomplete-checkpoint-N/                       a checkpoint cut short (Ctrl-C while it was saved), set aside

A rerun with the same config returns the finished result at once, or goes on from the newest
complete checkpoint of an interrupted run (which holds the log history up to it); a checkpoint
without a readable ``trainer_state.json`` (transformers writes it last) is moved aside, with a
warning, never deleted. ``out`` must be new, empty or a run of ours (its ``train_config.json``),
and apart from the model folders the run reads. torch, transformers
and TRL are imported only here, when a run starts (the ``train`` extra; a missing one is one
clear error).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import structlog

from open_strawberry.traces.files import write_lines_atomically
from open_strawberry.training.claim import check_apart, check_ours, claim_settings
from open_strawberry.training.config import TrainConfig, TrainResult
from open_strawberry.training.data import mixed_rows, thinking_for_template
from open_strawberry.training.extra import load_or_refuse, offline_hub, require
from open_strawberry.training.models import check_model_folder

__all__ = ["last_complete_checkpoint", "read_result", "train"]

_log = structlog.get_logger("open_strawberry.train")

_CONFIG = "train_config.json"
_RESULT = "train_result.json"
_LOSSES = "losses.jsonl"
_DATA = "train_data.jsonl"
_CHECKPOINTS = "checkpoints"


def read_result(out: str | Path) -> TrainResult | None:
    """The result of a finished run in ``out``, or None."""
    path = Path(out) / _RESULT
    return msgspec.json.decode(path.read_bytes(), type=TrainResult) if path.is_file() else None


def _claim(config: TrainConfig, out: Path, *, record: bool = False) -> None:
    """Check that an earlier run in ``out`` had the same config; with ``record``, write it there
    (only once the model has loaded: a failed start leaves nothing behind)."""
    mine = {name: value for name, value in msgspec.to_builtins(config).items() if name != "progress"}
    claim_settings(out / _CONFIG, mine, run="a training run", elsewhere="another --out", free={"progress"},
                   record=mine if record else None)


def train(config: TrainConfig, *, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and save the result in ``config.out``.

    Blocks until done (minutes to hours: run it in a worker thread from async code).
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects. Raises ConfigurationError
    for a bad config or data file (before any model is loaded) and when the extra is missing.
    """
    config.check()
    out = Path(config.out)
    check_ours(out, _CONFIG, option="--out", run="training run")
    check_apart(out, "--out", {"--model": config.model, "--ref-model": config.ref_model})
    if (done := read_result(out)) is not None and (out / _CONFIG).is_file():
        _claim(config, out)  # the same settings, or an error
        return done
    model_path = check_model_folder(config.model, "--model")
    ref_path = check_model_folder(config.ref_model, "--ref-model") if config.ref_model else model_path
    rows, mixed = mixed_rows(config.data, config.kind, list(config.mix), seed=config.seed)
    _claim(config, out)
    if config.lora:
        require("peft")
    require()
    with warnings.catch_warnings():  # renames announced inside transformers and TRL: not the user's to fix
        for module in ("transformers", "trl", "peft", "torch", "accelerate"):
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        return _train(config, out, model_path, ref_path, rows, mixed, callbacks)


def _fields() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {field.name for field in dataclasses.fields(TrainingArguments)}


def _train(config: TrainConfig, out: Path, model_path: str, ref_path: str, rows: list[dict[str, Any]],
           mixed: int, callbacks: Sequence[Any]) -> TrainResult:
    """Load, claim ``out``, train (from the newest checkpoint, if any), save; the steps below."""
    offline_hub()
    import torch

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    tokenizer, model = _load(config, model_path)
    _claim(config, out, record=True)
    rows, moved = thinking_for_template(_rows_to_train_on(out, rows), getattr(tokenizer, "chat_template", None))
    if moved:
        _log.warning("thinking_put_inline", messages=moved,
                  reason="the model's chat template does not render reasoning_content")
    checkpoints = out / _CHECKPOINTS
    last = last_complete_checkpoint(checkpoints)
    trainer = _trainer(config, model, tokenizer, rows, ref_path, _arguments(config, checkpoints), callbacks)
    output = trainer.train(resume_from_checkpoint=last)
    _save(config, trainer.model, tokenizer, out)
    losses = _write_losses(out / _LOSSES, trainer.state.log_history)
    result = TrainResult(kind=config.kind, out=str(out), base_model=config.model, rows=len(rows), mixed_rows=mixed,
                         steps=int(output.global_step), epochs=float(output.metrics.get("epoch", 0.0)),
                         train_loss=output.metrics.get("train_loss"), last_loss=losses[-1] if losses else None,
                         losses=losses, elapsed_s=time.perf_counter() - started, resumed_from=last)
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    write_lines_atomically(out / _RESULT, [msgspec.json.format(msgspec.json.encode(result))])
    return result


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest ``checkpoint-N`` in ``checkpoints`` whose ``trainer_state.json`` (written
    last) reads; each newer one cut short is renamed ``incomplete-checkpoint-N`` beside
    ``checkpoints`` (not deleted), with a warning. None when there is no complete one."""
    found = [(int(path.name.removeprefix("checkpoint-")), path) for path in checkpoints.glob("checkpoint-*")
             if path.is_dir() and path.name.removeprefix("checkpoint-").isdigit()] if checkpoints.is_dir() else []
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_bytes())
            return str(path)
        except (OSError, ValueError):
            aside = checkpoints.parent / f"incomplete-{path.name}"
            for number in range(1, 1000):
                if not aside.exists():
                    break
                aside = checkpoints.parent / f"incomplete-{path.name}.{number}"
            path.rename(aside)
            _log.warning("incomplete_checkpoint_set_aside", checkpoint=str(path), moved_to=str(aside),
                         reason="no readable trainer_state.json: it was cut short while being saved")
    return None


def _load(config: TrainConfig, model_path: str) -> tuple[Any, Any]:
    """The tokenizer (with a pad token) and the fp32 model of ``model_path``; a file that does not
    load is one line naming ``--model``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    label = f"--model {config.model}"
    tokenizer = load_or_refuse(label, "tokenizer", lambda: AutoTokenizer.from_pretrained(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_or_refuse(label, "model",
                           lambda: AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32))
    return tokenizer, model


def _rows_to_train_on(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows``, recorded in ``out``; a resumed run trains on the rows it started with, in their order."""
    data_file = out / _DATA
    if data_file.is_file():
        return [json.loads(line) for line in data_file.read_bytes().splitlines() if line.strip()]
    write_lines_atomically(data_file, (json.dumps(row).encode() + b"\n" for row in rows))
    return rows


def _arguments(config: TrainConfig, checkpoints: Path) -> dict[str, Any]:
    """The training arguments SFT and DPO share (TRL's configs take them as keywords)."""
    import torch

    arguments: dict[str, Any] = {
        "output_dir": str(checkpoints), "num_train_epochs": config.epochs,
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "per_device_train_batch_size": config.batch_size, "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.rate, "warmup_steps": config.warmup_ratio, "logging_steps": config.logging_steps,
        "save_strategy": "steps", "save_steps": config.save_steps, "save_total_limit": 1, "report_to": "none",
        "seed": config.seed, "bf16": False, "fp16": False,
        "disable_tqdm": not config.progress, "max_length": config.max_length, "dataloader_num_workers": 0,
        "dataloader_pin_memory": bool(torch.cuda.is_available()),
    }
    # a small model on a CPU: no activation checkpointing (TRL turns it on; transformers renamed it)
    renamed = "activation_checkpointing" if "activation_checkpointing" in _fields() else "gradient_checkpointing"
    arguments[renamed] = False
    return arguments


def _trainer(config: TrainConfig, model: Any, tokenizer: Any, rows: list[dict[str, Any]], ref_path: str,
             arguments: dict[str, Any], callbacks: Sequence[Any]) -> Any:
    """TRL's SFT or DPO trainer on ``rows``, with LoRA adapters when asked."""
    import datasets  # type: ignore[import-untyped,unused-ignore]

    dataset = datasets.Dataset.from_list(rows)
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    if config.kind == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(model=model, args=SFTConfig(**arguments), train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    # the reference is a local model (or, with LoRA, the model with its adapters off): never the hub
    reference = None if config.lora else load_or_refuse(
        f"--ref-model {config.ref_model}" if config.ref_model else f"--model {config.model}", "model",
        lambda: AutoModelForCausalLM.from_pretrained(ref_path, dtype=torch.float32))
    return DPOTrainer(model=model, ref_model=reference, args=DPOConfig(beta=config.beta, **arguments),
                      train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                      callbacks=list(callbacks))


def _save(config: TrainConfig, trained: Any, tokenizer: Any, out: Path) -> None:
    """The trained model (LoRA adapters merged in) and its tokenizer, into ``out``."""
    if config.lora:
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def _write_losses(path: Path, log_history: list[dict[str, Any]]) -> list[float]:
    """Write the logged losses of transformers' ``state.log_history`` (which a resumed run loads
    from its checkpoint: the steps before it are there once) to ``path``, one
    ``{"step", "loss", "learning_rate", "epoch"}`` line per logged step; returns the losses."""
    logged = [{"step": entry["step"], "loss": float(entry["loss"]), "learning_rate": entry.get("learning_rate"),
               "epoch": entry.get("epoch")} for entry in log_history if "loss" in entry]
    write_lines_atomically(path, (json.dumps(entry).encode() + b"\n" for entry in logged))
    return [entry["loss"] for entry in logged]
