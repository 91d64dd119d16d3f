"""The command line: help, version, the demo, and Ctrl-C leaving a valid traces file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_strawberry import TraceRecord, __version__
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.cli import main
from open_strawberry.messages import record_decoder
from open_strawberry.mock import MockConfig
from open_strawberry.problems.builtin import builtin_problems
from tests.helpers import child_process, stop


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"open-strawberry {__version__}"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("generate", "demo", "problems", "mock-server"):
        assert command in out
    assert "--log-json" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: open-strawberry" in capsys.readouterr().out


def read_records(path: Path) -> list[TraceRecord]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} must end with a complete line"
    return [record_decoder.decode(line) for line in data.splitlines()]


def test_demo_runs_both_strategies_and_writes_every_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out-dir", str(tmp_path), "--problems", "6", "--samples", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for strategy in ("nudge", "verify"):
        records = read_records(tmp_path / f"{strategy}.jsonl")
        assert {(r.problem_id, r.sample) for r in records} == {(p.id, s) for p in builtin_problems("mixed", 6)
                                                               for s in range(2)}
        assert {r.strategy for r in records} == {strategy}
        assert all(r.status in ("final", "max_turns") for r in records)
        assert (tmp_path / f"{strategy}.jsonl.manifest.json").exists()
        assert f"demo: {strategy} strategy" in printed
    assert "pass rate" in printed


class MockProcess:
    """The mock in a child process, as a separate server would be: its URL and what it served."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, object]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/mock/stats", timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def slow_mock() -> Iterator[MockProcess]:
    with mock_server_process(MockConfig(ttft_s=0.02, tokens_per_s=400, tokens_per_chunk=4)) as url:
        yield MockProcess(url)


def generate_command(url: str, problems: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "open_strawberry.cli", "generate", problems, "--model", f"mock:reasoner@{url}/v1",
            "--out", str(out), "--no-progress", *extra]


def wait_for_lines(out: Path, lines: int, process: subprocess.Popen[str]) -> None:
    """Poll the traces file (the run's only observable progress from outside) until it has ``lines``."""
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_bytes().count(b"\n") >= lines):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote too little"
        time.sleep(0.05)


def test_ctrl_c_finishes_traces_in_flight_and_leaves_a_valid_file(tmp_path: Path, slow_mock: MockProcess) -> None:
    out = tmp_path / "traces.jsonl"
    with child_process(generate_command(slow_mock.url, "builtin:mixed:100000", out, "--max-traces", "16")) as process:
        wait_for_lines(out, 5, process)
        stdout, stderr = stop(process)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    records = read_records(out)
    assert 5 <= len(records) < 1000
    assert all(r.status in ("final", "max_turns") for r in records)  # in-flight traces were finished, not cut
    assert len({(r.problem_id, r.sample) for r in records}) == len(records)
    assert "traces written" in stdout


def test_a_killed_run_resumes_without_duplicates_or_repeated_calls(tmp_path: Path, slow_mock: MockProcess) -> None:
    out = tmp_path / "traces.jsonl"
    command = generate_command(slow_mock.url, "builtin:mixed:40", out, "--samples", "2", "--max-traces", "8")
    with child_process(command) as first:
        wait_for_lines(out, 10, first)
        stop(first, signal.SIGKILL, timeout=30)
    with out.open("ab") as file:  # as if the kill had torn the last write
        file.write(b'{"type":"TraceRecord","trace_id":"torn')
    kept = read_records_tolerant(out)
    calls_before = slow_mock.stats()["requests"]
    second = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    records = read_records(out)
    pairs = [(r.problem_id, r.sample) for r in records]
    assert sorted(pairs) == sorted((p.id, s) for p in builtin_problems("mixed", 40) for s in range(2))
    assert records[: len(kept)] == kept  # the first run's records stay as they were
    new = records[len(kept):]
    calls = slow_mock.stats()["requests"] - calls_before  # type: ignore[operator]
    assert calls == sum(len(r.turns) for r in new)  # nothing finished was asked again
    manifest = json.loads((tmp_path / "traces.jsonl.manifest.json").read_text())
    assert manifest["resumed_records"] == len(kept)
    assert manifest["summary"]["written"] == len(new)


def read_records_tolerant(path: Path) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in path.read_bytes().split(b"\n")[:-1]]


def test_a_malformed_problems_file_fails_before_any_call(tmp_path: Path, slow_mock: MockProcess) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text('{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n{"id": "b", "prompt": "x"}\n')
    result = subprocess.run(generate_command(slow_mock.url, str(problems), tmp_path / "t.jsonl"),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"{problems}:2: missing field 'answer'" in result.stderr
    assert slow_mock.stats()["requests"] == 0


def test_generate_takes_a_toml_config_and_the_command_line_wins(tmp_path: Path, slow_mock: MockProcess) -> None:
    out = tmp_path / "traces.jsonl"
    config = tmp_path / "run.toml"
    config.write_text(f'problems = "builtin:letters:3"\nmodel = "mock:reasoner@{slow_mock.url}/v1"\n'
                      f'out = "{out}"\nsamples = 3\nstrategy = "verify"\nmax_turns = 9\n')
    result = subprocess.run([sys.executable, "-m", "open_strawberry.cli", "generate", "--config", str(config),
                             "--samples", "2", "--no-progress"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    records = read_records(out)
    assert len(records) == 6 and {r.strategy for r in records} == {"verify"}
    manifest = json.loads((tmp_path / "traces.jsonl.manifest.json").read_text())
    assert manifest["config"]["samples"] == 2 and manifest["config"]["max_turns"] == 9
    assert manifest["versions"]["open-strawberry"] == __version__


def test_a_bad_config_file_names_the_file_and_the_option(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('problems = "builtin:letters"\nmax_turns = "many"\n')
    assert main(["generate", "--config", str(config)]) == 1
    config.write_text('problems = "builtin:letters"\nmax_turn = 3\n')
    assert main(["generate", "--config", str(config)]) == 1


def test_problems_writes_a_built_in_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["problems", "codes", "--count", "3", "--seed", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["codes-0", "codes-1", "codes-2"]
    out = tmp_path / "p.jsonl"
    assert main(["problems", "letters", "--count", "5", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_mock_server_serves_until_terminated() -> None:
    import anyio

    from open_strawberry import ChatMessage
    from open_strawberry.backends import ChatRequest, create_backend

    with child_process([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                        "--tokens-per-chunk", "4"]) as process:
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
        stop(process, signal.SIGTERM, timeout=30)
    assert process.returncode == 0


def test_mock_server_thinking_serves_a_reasoning_model() -> None:
    import anyio

    from open_strawberry import ChatMessage
    from open_strawberry.backends import ChatRequest, create_backend

    with child_process([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                        "--thinking", "reasoning_content"]) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("mock server listening on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[4]

        async def ask() -> tuple[str, str]:
            backend = create_backend(f"mock:any@{url}/v1")
            try:
                request = ChatRequest(messages=(ChatMessage(role="user", content="What is 2 + 2 * 3?"),))
                completion = await backend.complete(request)
                return completion.text, completion.reasoning
            finally:
                await backend.aclose()

        text, reasoning = anyio.run(ask)
        assert text.startswith("Next operation: 2 * 3 = 6.")
        assert reasoning and reasoning not in text  # the thinking came apart from the answer
        stop(process, signal.SIGTERM, timeout=30)
    assert process.returncode == 0


def test_mock_server_refuses_an_unknown_thinking_mode() -> None:
    result = subprocess.run([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--thinking", "loud"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "--thinking: invalid choice: 'loud'" in result.stderr
    assert "Traceback" not in result.stderr


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


def test_bootstrap_stage_details_read_as_words_not_reprs() -> None:
    from open_strawberry.cli.bootstrap import _words

    assert _words({"level": 2, "pass_at_1": {1: 0.25, 2: 0.5}}) == "level 2 · pass@1 by level 1: 0.25, 2: 0.5"
    assert _words({"sft_rows": 1234, "loss": 0.5312345}) == "SFT rows 1,234 · loss 0.5312"
