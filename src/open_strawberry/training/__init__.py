"""Training on exported traces, and the model files around it (the ``train`` extra).

- :mod:`~open_strawberry.training.config`: :class:`TrainConfig`, :class:`TrainResult`, ``--mix``;
- :mod:`~open_strawberry.training.data`: reading and checking SFT/DPO files, mixing in other rows
  (``builtin:chat``: a small ordinary-chat set shipped with the package);
- :mod:`~open_strawberry.training.trainer`: :func:`train` (TRL's SFT and DPO trainers, resumable);
- :mod:`~open_strawberry.training.models`: :func:`import_gguf` (a trainable checkpoint from a
  GGUF file) and :func:`export_gguf` (a checkpoint as GGUF, with llama.cpp's own script);
- :mod:`~open_strawberry.training.extra`: the check for the ``train`` extra.

Importing this package is cheap: torch, transformers and TRL are imported by the functions
that use them, when they run.
"""

from open_strawberry.training.config import MixSource, TrainConfig, TrainResult, parse_mix
from open_strawberry.training.data import chat_data, mixed_rows, read_rows
from open_strawberry.training.models import GGUF_TYPES, export_gguf, find_converter, import_gguf
from open_strawberry.training.trainer import read_result, train

__all__ = [
    "GGUF_TYPES",
    "MixSource",
    "TrainConfig",
    "TrainResult",
    "chat_data",
    "export_gguf",
    "find_converter",
    "import_gguf",
    "mixed_rows",
    "parse_mix",
    "read_result",
    "read_rows",
    "train",
]
