"""Bootstrapping: rounds of serve → evaluate → generate → select → export → train, each round
on the model the one before trained, up a ladder of problem levels.

- :mod:`~open_strawberry.bootstrap.config`: :class:`BootstrapConfig`, every option;
- :mod:`~open_strawberry.bootstrap.run`: :func:`bootstrap`, the resumable loop and its run directory;
- :mod:`~open_strawberry.bootstrap.rounds`: a round as a table of named stages and the one runner
  that skips, runs and records each (:class:`StageEvent`: what a listener hears);
- :mod:`~open_strawberry.bootstrap.stages`: the replaceable parts (:class:`ModelServer`,
  :class:`Trainer`) and their defaults (llama.cpp's server on a GGUF export, TRL);
- :mod:`~open_strawberry.bootstrap.report`: the report (Markdown, JSON, a plot), Wilson intervals.

Nothing here imports torch: training happens in :mod:`open_strawberry.training`, loaded when a
round trains.
"""

from open_strawberry.bootstrap.config import BootstrapConfig
from open_strawberry.bootstrap.report import EvalResult, RoundReport, render_markdown, wilson_interval, write_report
from open_strawberry.bootstrap.rounds import StageEvent
from open_strawberry.bootstrap.run import BootstrapResult, bootstrap
from open_strawberry.bootstrap.stages import (
    LlamaCppServer,
    ModelServer,
    ServedModel,
    Trainer,
    TrainRequest,
    TrlTrainer,
)

__all__ = [
    "BootstrapConfig",
    "BootstrapResult",
    "EvalResult",
    "LlamaCppServer",
    "ModelServer",
    "RoundReport",
    "ServedModel",
    "StageEvent",
    "TrainRequest",
    "Trainer",
    "TrlTrainer",
    "bootstrap",
    "render_markdown",
    "wilson_interval",
    "write_report",
]
