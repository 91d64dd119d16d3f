"""What a training run takes (:class:`TrainConfig`) and what it reports (:class:`TrainResult`).

Both are plain msgspec Structs with no heavy import: the command line checks a config, and a
bootstrap run records one, without loading torch.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from open_strawberry.errors import ConfigurationError

__all__ = ["MixSource", "TrainConfig", "TrainResult", "parse_mix"]

CHAT_MIX = "builtin:chat"  # the ordinary-chat rows shipped with the package (training/resources/chat.jsonl)


class MixSource(msgspec.Struct, frozen=True, kw_only=True):
    """Rows of another dataset mixed in: ``fraction`` of the training set comes from ``path``
    (a JSONL file in the same format as the data, or ``builtin:chat``)."""

    path: str
    fraction: float


def parse_mix(spec: str) -> MixSource:
    """``FILE:FRACTION`` (e.g. ``builtin:chat:0.2``) → a MixSource; ConfigurationError otherwise."""
    path, sep, fraction = spec.rpartition(":")
    try:
        value = float(fraction) if sep and path else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value < 1):
        raise ConfigurationError(f"--mix {spec!r}: write FILE:FRACTION with a fraction between 0 and 1 "
                                 f"(e.g. {CHAT_MIX}:0.2)")
    return MixSource(path=path, fraction=value)


class TrainConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One training run with TRL on the CPU (or whatever torch finds), written to ``out``.

    ``learning_rate`` None takes the default for the method: 2e-5 (SFT), 5e-6 (DPO), ten times
    that with LoRA. ``max_steps`` None trains ``epochs`` epochs. ``ref_model`` (DPO) None uses
    ``model`` as the reference. ``mix`` sources are mixed into the data (their fractions of
    the final set). The config is written beside the model (``train_config.json``); a rerun
    with the same ``out`` resumes from the newest checkpoint, and refuses another config.
    """

    kind: Literal["sft", "dpo"]
    data: str
    model: str
    out: str
    mix: list[MixSource] = []
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 2
    grad_accum: int = 4
    max_length: int = 1024
    warmup_ratio: float = 0.0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    beta: float = 0.1  # DPO's KL weight
    ref_model: str | None = None
    seed: int = 0
    save_steps: int = 25
    logging_steps: int = 1
    threads: int | None = None  # torch's CPU threads; None: torch's default
    keep_checkpoints: bool = False  # keep checkpoints/ once the model is saved (they hold the optimizer: 3x the model)
    progress: bool = True

    def check(self) -> None:
        """ConfigurationError, naming the option, for values no run can use."""
        counts = {"batch_size": self.batch_size, "grad_accum": self.grad_accum, "max_length": self.max_length,
                  "lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "save_steps": self.save_steps,
                  "logging_steps": self.logging_steps, "max_steps": self.max_steps, "threads": self.threads}
        for name, count in counts.items():
            if count is not None and count < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {count}")
        positive = {"epochs": self.epochs, "learning_rate": self.learning_rate, "beta": self.beta}
        for name, value in positive.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a number above 0, got {value}")
        for name, share in {"warmup_ratio": self.warmup_ratio, "lora_dropout": self.lora_dropout}.items():
            if not (math.isfinite(share) and 0 <= share < 1):
                raise ConfigurationError(f"{name} must be at least 0 and below 1, got {share}")
        if sum(source.fraction for source in self.mix) >= 1:
            raise ConfigurationError("the --mix fractions add up to 1 or more: leave room for the data itself")
        for source in self.mix:
            if not (math.isfinite(source.fraction) and 0 < source.fraction < 1):
                raise ConfigurationError(f"--mix {source.path}: the fraction must be between 0 and 1")

    @property
    def rate(self) -> float:
        """The learning rate used: the one given, or the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        base = 2e-5 if self.kind == "sft" else 5e-6
        return base * 10 if self.lora else base


class TrainResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a training run did; written as ``train_result.json`` beside the model."""

    kind: str
    out: str  # the trained model (a full checkpoint: LoRA adapters are merged in)
    base_model: str
    rows: int  # training rows, mixed-in rows included
    mixed_rows: int
    steps: int
    epochs: float
    train_loss: float | None  # mean over the run (the trainer's figure)
    last_loss: float | None  # the last logged loss
    losses: list[float]  # every logged loss, in step order (also in losses.jsonl)
    elapsed_s: float
    resumed_from: str | None = None  # the checkpoint this run went on from
