"""Every option of a ``generate`` run, and the TOML file that may hold them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import msgspec

from open_strawberry.backends.batch import BATCH_PROVIDERS
from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.grading.registry import check_grader_name

__all__ = ["DEFAULT_TEMPERATURE", "GenerateConfig", "load_config"]

DEFAULT_TEMPERATURE = 0.7
_MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget_tokens


class GenerateConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every option of ``generate``; the TOML file (``--config``) holds the same keys.

    Thinking of reasoning models: ``reasoning_effort`` is sent to OpenAI-compatible servers as
    their ``reasoning_effort``; ``thinking_budget`` turns Anthropic's extended thinking on
    (``budget_tokens``: at least 1024 and below ``max_tokens``; the API wants temperature 1,
    so the default temperature gives way to it, and any other one given is refused);
    ``reasoning_history`` says whether earlier turns' thinking is sent back (auto: as the
    provider wants; keep; drop); ``verifier_thinking`` shows the verifier each turn's thinking
    as well as its answer.

    ``batch`` sends the model's calls through its provider's batch API (see ``docs/batch.md``):
    the calls the traces wait for at a moment go as one round of batches, polled every
    ``batch_poll_s`` (with backoff), and a journal beside the traces file lets a rerun poll
    what was sent instead of paying again.
    """

    problems: str = ""  # a file, hf:NAME_OR_DIR, or builtin:NAME[:COUNT]
    problems_format: Literal["auto", "jsonl", "gsm8k", "math", "parquet", "hf"] = "auto"
    id_field: str | None = "id"
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    split: str = "train"
    model: str = "mock:reasoner"
    out: str = "traces.jsonl"
    samples: int = 1
    max_traces: int = 256
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    strategy: Literal["nudge", "verify"] = "nudge"
    max_turns: int = 12
    final_every: int = 3
    verify_every: int = 0
    verify_window: int = 3
    verifier_model: str | None = None
    veto_below: float | None = 0.5
    temperature: float | None = DEFAULT_TEMPERATURE
    max_tokens: int = 1024
    max_trace_tokens: int | None = None
    seed: int = 0
    grader: str = "auto"
    answer_fallback: Literal["none", "last_number"] = "none"
    last_call: bool = False  # at max_turns without a final answer, ask once more for the answer alone
    api_key_env: str | None = None
    timeout_s: float = 600.0
    call_timeout_s: float = 600.0  # total per call attempt, however slowly it streams
    retry_failed: bool = False  # on resume, run the failed pairs again (their records move to <out>.failed.jsonl)
    max_failed_share: float = 0.1  # a run with more failed traces than this share counts as failed (exit 3)
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    reasoning_history: Literal["auto", "keep", "drop"] = "auto"
    verifier_thinking: bool = False
    batch: bool = False  # the model's calls go through its provider's batch API (half price, up to 24 h a round)
    batch_poll_s: float = 30.0  # first interval between polls of a batch (it doubles up to 16 times this)

    @property
    def sampling_temperature(self) -> float | None:
        """The temperature the generator sends: the configured one, except that the default
        gives way to the API's own (1) where Anthropic thinking requires it."""
        if self.thinking_budget is not None and self.temperature == DEFAULT_TEMPERATURE:
            return None
        return self.temperature

    def check(self) -> None:
        """Raise ConfigurationError, naming the option, for values no run can use (a rate of
        zero, no concurrency, NaN...): such a run would wait forever or write nonsense."""
        positive = {"samples": self.samples, "max_traces": self.max_traces, "max_turns": self.max_turns,
                    "max_tokens": self.max_tokens, "verify_window": self.verify_window,
                    "max_concurrency": self.max_concurrency, "max_trace_tokens": self.max_trace_tokens}
        for name, count in positive.items():
            if count is not None and count < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {count}")
        for name, count in {"final_every": self.final_every, "verify_every": self.verify_every}.items():
            if count < 0:
                raise ConfigurationError(f"{name} must not be negative, got {count}")
        rates = {"rpm": self.rpm, "tpm": self.tpm, "input_tpm": self.input_tpm, "output_tpm": self.output_tpm,
                 "timeout_s": self.timeout_s, "call_timeout_s": self.call_timeout_s, "batch_poll_s": self.batch_poll_s}
        for name, rate in rates.items():
            if rate is not None and not (math.isfinite(rate) and rate > 0):
                raise ConfigurationError(f"{name} must be a number above 0, got {rate}")
        if self.temperature is not None and not (math.isfinite(self.temperature) and 0 <= self.temperature <= 2):
            raise ConfigurationError(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.veto_below is not None and not (math.isfinite(self.veto_below) and 0 <= self.veto_below <= 1):
            raise ConfigurationError(f"veto_below must be between 0 and 1 (a verifier score), got {self.veto_below}")
        if not (math.isfinite(self.max_failed_share) and 0 <= self.max_failed_share <= 1):
            raise ConfigurationError(f"max_failed_share must be between 0 and 1, got {self.max_failed_share}")
        check_grader_name(self.grader, trusted=True)
        for name, model in {"model": self.model, "verifier_model": self.verifier_model}.items():
            if model is not None:
                try:
                    parse_model(model)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{name}: {exc}") from None
        self._check_thinking()
        if self.batch and parse_model(self.model).provider not in BATCH_PROVIDERS:
            raise ConfigurationError(f"--batch needs a provider with a batch API ({', '.join(BATCH_PROVIDERS)}); "
                                     f"{self.model} has none (openai:MODEL@URL takes a compatible server that has)")
        if not self.problems:
            raise ConfigurationError("no problems given: pass a JSONL file or builtin:NAME[:COUNT]")

    def _check_thinking(self) -> None:
        """Refuse, before any call, the thinking options the model's API would refuse on every
        call (with a 400 per trace)."""
        anthropic = parse_model(self.model).api == "anthropic"
        if self.reasoning_effort is not None and (anthropic or not self.reasoning_effort.strip()):
            raise ConfigurationError("reasoning_effort is for OpenAI-compatible servers (low, medium, high...); "
                                     "Anthropic models take thinking_budget" if anthropic else
                                     "reasoning_effort must not be empty")
        budget = self.thinking_budget
        if budget is None:
            return
        if not anthropic:
            raise ConfigurationError(f"thinking_budget is Anthropic's budget_tokens, and {self.model} is not an "
                                     "Anthropic model; OpenAI-compatible servers take reasoning_effort")
        if budget < _MIN_THINKING_BUDGET or budget >= self.max_tokens:
            raise ConfigurationError(f"thinking_budget must be at least {_MIN_THINKING_BUDGET} tokens and below "
                                     f"max_tokens ({self.max_tokens}), got {budget}")
        if self.temperature not in (None, 1.0, DEFAULT_TEMPERATURE):
            raise ConfigurationError(f"Anthropic thinking needs temperature 1, got {self.temperature}: leave "
                                     "temperature unset")


def load_config(path: str | Path) -> GenerateConfig:
    """Read a TOML config file; errors name the file and the key."""
    path = Path(path)
    try:
        return msgspec.toml.decode(path.read_bytes(), type=GenerateConfig)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except msgspec.ValidationError as exc:
        message = str(exc).replace("Object contains unknown field", "unknown option")
        raise ConfigurationError(f"{path}: {message}") from None
    except msgspec.DecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None
