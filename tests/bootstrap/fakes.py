"""A stand-in server and trainer for bootstrap runs without a real model: a "model" is a folder
holding its accuracy, served by the mock LLM; "training" raises it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from open_strawberry.bootstrap import ServedModel, TrainRequest
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.training import TrainResult


def make_model(folder: Path, accuracy: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accuracy.txt").write_text(f"{accuracy}\n")
    return folder


class MockModels:
    """Serves a model folder with the mock LLM at its accuracy; remembers what it served, and
    counts the servers open now."""

    def __init__(self) -> None:
        self.served: list[Path] = []
        self.serving = 0  # servers open now

    @contextlib.asynccontextmanager
    async def open(self, model: Path, *, workdir: Path) -> AsyncIterator[ServedModel]:
        accuracy = float((model / "accuracy.txt").read_text())
        self.served.append(model)
        async with open_mock_server(MockConfig(accuracy=accuracy, confident_after=1, seed=len(self.served))) as server:
            self.serving += 1
            try:
                yield ServedModel(model=f"mock:reasoner@{server.openai_base_url}", file=str(model / "accuracy.txt"),
                                  loaded=str(model / "accuracy.txt"))
            finally:
                self.serving -= 1


class RaisingTrainer:
    """Trains to ``accuracy + step``; remembers the requests; fails while ``fail`` is set."""

    def __init__(self, step: float = 0.3, *, fail: bool = False) -> None:
        self.step = step
        self.fail = fail
        self.requests: list[TrainRequest] = []

    def __call__(self, request: TrainRequest) -> TrainResult:
        self.requests.append(request)
        if self.fail:
            raise RuntimeError("the trainer crashed")
        rows = len(request.data.read_text().splitlines())
        accuracy = min(1.0, float((request.model / "accuracy.txt").read_text()) + self.step)
        make_model(request.out, accuracy)
        return TrainResult(kind=request.kind, out=str(request.out), base_model=str(request.model), rows=rows,
                           mixed_rows=0, steps=1, epochs=1.0, train_loss=1 - accuracy, last_loss=1 - accuracy,
                           losses=[1 - accuracy], elapsed_s=0.0)
