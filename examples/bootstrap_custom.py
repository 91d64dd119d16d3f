"""Bootstrap with your own server and trainer: every stage of a round can be replaced.

    python examples/bootstrap_custom.py [OUT_DIR]

The defaults serve a checkpoint with llama.cpp and train it with TRL (the ``train`` extra).
Here both are replaced, so it runs offline in seconds with nothing extra installed:

* the "model" is a folder holding one number, its accuracy;
* ``MockModelServer`` serves it with the mock LLM at that accuracy;
* ``NudgeTrainer`` "trains" by raising the accuracy a little for every SFT row.

Put your own trainer (a remote fine-tuning job, another library) or server (vLLM, a hosted
endpoint) in their place: a server is an object with ``open(model, workdir=...)`` returning an
async context manager of a ``ServedModel``; a trainer is a callable taking a ``TrainRequest``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from open_strawberry.bootstrap import BootstrapConfig, ServedModel, StageEvent, TrainRequest, bootstrap
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.training import TrainResult


class MockModelServer:
    """Serves a "model" folder with the mock LLM at the accuracy the folder holds."""

    def __init__(self) -> None:
        self.served: list[Path] = []

    @contextlib.asynccontextmanager
    async def open(self, model: Path, *, workdir: Path) -> AsyncIterator[ServedModel]:
        accuracy = float((model / "accuracy.txt").read_text())
        self.served.append(model)
        async with open_mock_server(MockConfig(accuracy=accuracy, confident_after=1, seed=len(self.served))) as server:
            yield ServedModel(model=f"mock:reasoner@{server.openai_base_url}", file=str(model / "accuracy.txt"),
                              loaded=str(model / "accuracy.txt"))


class NudgeTrainer:
    """Writes a new "model" whose accuracy is a little higher for every SFT row it saw."""

    def __call__(self, request: TrainRequest) -> TrainResult:
        rows = len(request.data.read_text().splitlines())
        accuracy = float((request.model / "accuracy.txt").read_text())
        better = min(1.0, accuracy + 0.01 * rows)
        request.out.mkdir(parents=True, exist_ok=True)
        (request.out / "accuracy.txt").write_text(f"{better}\n")
        loss = 1.0 - better
        return TrainResult(kind=request.kind, out=str(request.out), base_model=str(request.model), rows=rows,
                           mixed_rows=0, steps=rows, epochs=1.0, train_loss=loss, last_loss=loss, losses=[loss],
                           elapsed_s=0.0)


async def main(out_dir: Path) -> None:
    base = out_dir / "base"
    base.mkdir(parents=True, exist_ok=True)
    (base / "accuracy.txt").write_text("0.3\n")
    config = BootstrapConfig(run_dir=str(out_dir / "run"), base=str(base), problems="arithmetic", level=2,
                             rounds=3, eval_problems=20, eval_samples=4, pool=30, samples=4, mastery=0.9)
    server = MockModelServer()

    def show(event: StageEvent) -> None:
        if event.status == "done" and event.stage in {"evaluate", "train"}:
            print(f"round {event.round}: {event.stage} {event.detail}")

    result = await bootstrap(config, server=server, trainer=NudgeTrainer(), on_stage=show)
    for row in result.rounds:
        for held_out in row.evaluations:
            print(f"round {row.round} level {held_out.level}: held-out pass@1 {held_out.pass_at_1:.2f} "
                  f"[{held_out.low:.2f}, {held_out.high:.2f}]")
    print(f"served {len(server.served)} models; report in {result.report['markdown']}")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/bootstrap_custom"))
