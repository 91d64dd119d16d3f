"""The command line: help, version, the demo, and Ctrl-C leaving a valid traces file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from open_strawberry import __version__
from open_strawberry.cli import main
from open_strawberry.messages import record_decoder


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"open-strawberry {__version__}"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out
    assert "--log-json" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: open-strawberry" in capsys.readouterr().out


def test_demo_writes_every_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.jsonl"
    assert main(["demo", "--out", str(out), "--problems", "20", "--samples", "3", "--max-traces", "8"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[: printed.rindex("}") + 1])
    records = [record_decoder.decode(line) for line in out.read_bytes().splitlines()]
    assert summary["traces"] == len(records) == 60
    assert {(r.problem_id, r.sample) for r in records} == {(f"letters-{i}", s) for i in range(20) for s in range(3)}
    assert summary["correct"] == sum(1 for r in records if r.correct)
    assert 0 < summary["correct"] <= 60


def test_ctrl_c_finishes_traces_in_flight_and_leaves_a_valid_file(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "open_strawberry.cli", "demo", "--out", str(out), "--problems", "100000",
         "--samples", "1", "--max-traces", "32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 0):  # wait for the run to be under way
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the demo wrote nothing"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr
    data = out.read_bytes()
    assert data.endswith(b"\n")
    records = [record_decoder.decode(line) for line in data.splitlines()]
    assert 0 < len(records) < 100_000
    assert all(r.status in ("final", "max_turns") for r in records)  # in-flight traces were finished
    assert json.loads(stdout[: stdout.rindex(b"}") + 1])["traces"] == len(records)


def test_mock_server_serves_until_terminated() -> None:
    import anyio

    from open_strawberry import ChatMessage
    from open_strawberry.backends import ChatRequest, create_backend

    process = subprocess.Popen([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                                "--tokens-per-chunk", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the server accepts connections
        assert line.startswith("mock server listening on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[4]

        async def ask() -> str:
            backend = create_backend(f"mock:any@{url}/v1")
            try:
                request = ChatRequest(messages=(ChatMessage(role="user", content="What is 2 + 2 * 3?"),))
                return (await backend.complete(request)).text
            finally:
                await backend.aclose()

        assert anyio.run(ask).startswith("Next operation: 2 * 3 = 6.")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.communicate()


def test_mock_server_on_a_busy_port_fails_clearly() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", str(port)],
                                capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
