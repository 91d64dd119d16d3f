"""The ``train`` extra: checked before anything heavy is imported, with one clear message; and
the loading of model files through it, whose failures become one line naming the file."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TypeVar

from open_strawberry.errors import ConfigurationError

__all__ = ["INSTALL_HINT", "load_or_refuse", "offline_hub", "require"]

T = TypeVar("T")

INSTALL_HINT = ("pip install torch==2.13.0 -e '.[train]' "
                "(a pinned torch takes a CPU build where one is at hand)")


def require(*modules: str) -> None:
    """ConfigurationError naming the missing modules and the install command, unless all of
    ``modules`` can be imported (default: what training needs)."""
    wanted = modules or ("torch", "transformers", "trl", "accelerate", "datasets")
    missing = [name for name in wanted if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(f"this needs the 'train' extra (missing: {', '.join(missing)}): {INSTALL_HINT}")


def offline_hub() -> None:
    """Nothing is fetched from a hub at run time: models and data are local files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_or_refuse(label: str, what: str, load: Callable[[], T]) -> T:
    """``load()``; its failure (a damaged or foreign file: transformers and gguf raise many kinds,
    for many reasons) a one-line ConfigurationError: ``LABEL: its WHAT could not be loaded: ...``."""
    try:
        return load()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigurationError(f"{label}: its {what} could not be loaded: {reason}") from None
