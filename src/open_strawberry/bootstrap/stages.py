"""The replaceable parts of a bootstrap round, and the default of each.

* :class:`ModelServer`: serves a checkpoint for one round (evaluation and generation), and
  stops it. Default: :class:`LlamaCppServer` (the checkpoint converted to GGUF with llama.cpp's
  own script, then llama.cpp's ``llama-server``; it checks that the server loaded that file).
* :class:`Trainer`: trains a model on a round's SFT or DPO file. Default: :class:`TrlTrainer`
  (:func:`open_strawberry.training.train`, TRL).

Both are small protocols; a run takes any object that fits (see ``examples/bootstrap_custom.py``,
which serves the mock LLM and "trains" by raising its accuracy).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import msgspec

from open_strawberry.errors import OpenStrawberryError
from open_strawberry.training.config import TrainConfig, TrainResult

__all__ = ["LlamaCppServer", "ModelServer", "ServedModel", "TrainRequest", "Trainer", "TrlTrainer"]


@dataclass(frozen=True)
class ServedModel:
    """A model being served: the model string ``generate`` uses to reach it, the file served,
    and what the server itself says it loaded (None when it cannot say)."""

    model: str
    file: str
    loaded: str | None = None


@runtime_checkable
class ModelServer(Protocol):
    """Serves the checkpoint ``model`` while the context is open; ``workdir`` (the round's
    directory) is where it may keep files (a converted model, a log)."""

    def open(self, model: Path, *, workdir: Path) -> AbstractAsyncContextManager[ServedModel]: ...


@dataclass(frozen=True)
class TrainRequest:
    """One training job of a round: ``kind`` on ``data``, from ``model``, into ``out``."""

    kind: Literal["sft", "dpo"]
    data: Path
    model: Path
    out: Path
    round: int


@runtime_checkable
class Trainer(Protocol):
    """Trains as asked and returns what it did; blocking (it runs in a worker thread). The model
    it writes to ``request.out`` is the next one served."""

    def __call__(self, request: TrainRequest) -> TrainResult: ...


@dataclass(frozen=True)
class TrlTrainer:
    """Trains with :func:`open_strawberry.training.train` (TRL; the ``train`` extra), with the
    options of ``options`` (a :class:`TrainConfig`; its kind, data, model and out come from each
    request; its seed is offset by the round; mixed-in chat data goes to SFT only)."""

    options: TrainConfig = field(default_factory=lambda: TrainConfig(kind="sft", data="", model="", out=""))

    def __call__(self, request: TrainRequest) -> TrainResult:
        from open_strawberry.training.trainer import train

        return train(msgspec.structs.replace(
            self.options, kind=request.kind, data=str(request.data), model=str(request.model), out=str(request.out),
            mix=list(self.options.mix) if request.kind == "sft" else [], seed=self.options.seed + request.round))


@dataclass(frozen=True)
class LlamaCppServer:
    """llama.cpp's ``llama-server`` on the checkpoint converted to GGUF (``workdir/model.gguf``,
    made once: a resumed round reuses it). Checks that the server loaded that very file.

    ``threads`` None takes half the cores (at least one): the client, the grader and often
    other work share the machine, and llama.cpp's threads wait for each other by spinning, so
    a server with as many threads as cores slows down many times over as soon as anything
    else runs (measured on 2 busy cores: 1 thread 28 tokens/s, 2 threads 2.7 tokens/s).
    """

    gguf_type: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    parallel: int = 4
    context: int = 8192
    threads: int | None = None
    extra: tuple[str, ...] = field(default=())

    @contextlib.asynccontextmanager
    async def open(self, model: Path, *, workdir: Path) -> AsyncIterator[ServedModel]:
        from open_strawberry.serving import open_llama_server, server_props
        from open_strawberry.training.models import export_gguf

        gguf = workdir / "model.gguf"
        if not await anyio.Path(gguf).is_file():  # export_gguf blocks (a script, once a download): in a thread
            await anyio.to_thread.run_sync(
                lambda: export_gguf(model, gguf, type=self.gguf_type, log=workdir / "export-gguf.log"))
        async with open_llama_server(gguf.resolve(), log=workdir / "server.log", parallel=self.parallel,
                                     context=self.context, threads=self.threads or max(1, (os.cpu_count() or 2) // 2),
                                     extra=self.extra) as server:
            loaded = str((await server_props(server.root)).get("model_path", ""))
            if not await anyio.Path(loaded).exists() or not await anyio.Path(loaded).samefile(gguf):
                raise OpenStrawberryError(f"llama-server says it loaded {loaded!r}, not {gguf}")
            yield ServedModel(model=server.model(), file=str(gguf), loaded=loaded)
