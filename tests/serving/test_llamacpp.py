"""The model-server launcher with a stand-in ``llama-server``: entered once the server answers,
a taken port tried again, a failed start one error with the log, and the child process stopped
on every way out (the end of the block, an error, cancellation, a server deaf to SIGTERM)."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from open_strawberry.errors import OpenStrawberryError
from open_strawberry.serving import llamacpp, open_llama_server, server_props


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``llama-server`` is the stand-in of fake_llama_server.py; returns the model path it is given."""
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).with_name('fake_llama_server.py')} \"$@\"\n")
    binary.chmod(0o755)
    monkeypatch.setattr(llamacpp, "find_llama_server", lambda: binary)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return model


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def watch_starts(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], anyio.Event]:
    """The pids of the servers started, and an event set once one is waited on."""
    pids: list[int] = []
    waiting = anyio.Event()
    wait_ready = llamacpp._wait_ready

    async def watched(process: Process, *args: Any) -> None:
        pids.append(process.pid)
        waiting.set()
        await wait_ready(process, *args)

    monkeypatch.setattr(llamacpp, "_wait_ready", watched)
    return pids, waiting


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_the_server_is_entered_once_it_answers_and_stopped_when_the_block_ends(fake: Path,
                                                                                     tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with open_llama_server(fake, log=tmp_path / "server.log") as server:
            assert (await server_props(server.root))["model_path"] == str(fake)
            assert server.model() == f"llamacpp:local@{server.url}" and server.process.returncode is None
    assert server.process.returncode == -signal.SIGTERM and gone(server.process.pid)


async def test_a_port_taken_before_the_server_binds_it_is_traded_for_another(
        fake: Path, tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    ports = iter([taken_port])
    free = llamacpp._free_port
    monkeypatch.setattr(llamacpp, "_free_port", lambda: next(ports, None) or free())
    with anyio.fail_after(60):
        async with open_llama_server(fake, log=tmp_path / "server.log") as server:
            assert f":{taken_port}/" not in server.url
            assert (await server_props(server.root))["model_path"] == str(fake)


async def test_a_taken_port_that_was_asked_for_is_one_error(fake: Path, tmp_path: Path, taken_port: int) -> None:
    with anyio.fail_after(60), pytest.raises(OpenStrawberryError, match="port was taken"):
        async with open_llama_server(fake, log=tmp_path / "server.log", port=taken_port):
            pytest.fail("entered")


async def test_a_server_that_dies_while_starting_is_an_error_ending_with_its_log(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "die")
    with anyio.fail_after(60), pytest.raises(OpenStrawberryError, match=r"(?s)exited with code 3 .*file is damaged"):
        async with open_llama_server(fake, log=tmp_path / "server.log"):
            pytest.fail("entered")


async def test_a_server_that_never_answers_is_stopped_after_the_start_timeout(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "silent")
    pids, _ = watch_starts(monkeypatch)
    with anyio.fail_after(60), pytest.raises(OpenStrawberryError, match="did not answer"):
        async with open_llama_server(fake, log=tmp_path / "server.log", timeout_s=0.5):
            pytest.fail("entered")
    assert len(pids) == 1 and gone(pids[0])


async def test_cancelling_the_block_stops_the_server(fake: Path, tmp_path: Path) -> None:
    with anyio.fail_after(60), anyio.CancelScope() as scope:
        async with open_llama_server(fake, log=tmp_path / "server.log") as server:
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught and gone(server.process.pid)


async def test_cancelling_a_start_in_progress_stops_the_server(fake: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "silent")
    pids, waiting = watch_starts(monkeypatch)
    async with anyio.create_task_group() as tg:
        async def start() -> None:
            async with open_llama_server(fake, log=tmp_path / "server.log"):
                pytest.fail("entered")

        tg.start_soon(start)
        with anyio.fail_after(60):
            await waiting.wait()
        tg.cancel_scope.cancel()
    assert len(pids) == 1 and gone(pids[0])


async def test_a_server_deaf_to_sigterm_is_killed_after_the_grace_period(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "stubborn")
    monkeypatch.setattr(llamacpp, "_STOP_S", 0.2)
    with anyio.fail_after(60):
        async with open_llama_server(fake, log=tmp_path / "server.log") as server:
            pass
    assert server.process.returncode == -signal.SIGKILL
