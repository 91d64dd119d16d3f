"""``generate --batch`` from the command line: killed between a batch's submission and its results,
the same command again pays for nothing twice."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.cli import main
from open_strawberry.cli.figures import money
from open_strawberry.mock import MockConfig
from open_strawberry.mock.config import BatchBehaviour
from open_strawberry.problems.builtin import builtin_problems
from tests.cli.test_cli import MockProcess, generate_command, read_records
from tests.helpers import child_process, stop


def wait_for_submission(journal: Path, process: subprocess.Popen[str]) -> None:
    """Poll the journal (the run's only observable trace of a batch from outside) until a batch was taken."""
    deadline = time.monotonic() + 60
    while not (journal.exists() and b'"submitted"' in journal.read_bytes()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no batch was submitted"
        time.sleep(0.02)


def test_a_run_killed_while_its_batch_runs_resumes_without_paying_twice(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    with mock_server_process(MockConfig(batch=BatchBehaviour(delay_s=3.0))) as url:
        mock = MockProcess(url)
        command = generate_command(url, "builtin:mixed:20", out, "--samples", "2", "--max-turns", "4",
                                   "--final-every", "2", "--batch", "--batch-poll-s", "0.05")
        with child_process(command) as first:
            wait_for_submission(out.with_name("traces.jsonl.batches.jsonl"), first)
            stop(first, signal.SIGKILL, timeout=30)
        assert not out.exists() or out.read_bytes() == b""  # killed in the first round: nothing written yet
        second = subprocess.run(command, capture_output=True, timeout=180, check=False)
        assert second.returncode == 0, second.stderr
        sent = mock.stats()["batch_requests"]
    records = read_records(out)
    pairs = [(r.problem_id, r.sample) for r in records]
    assert sorted(pairs) == sorted((p.id, s) for p in builtin_problems("mixed", 20) for s in range(2))
    assert isinstance(sent, dict)
    # the first round went in once, before the kill; the rerun polled it and sent only the later turns
    assert sent["total"] == sent["distinct"] == sum(len(r.turns) for r in records)


def test_batch_is_refused_in_one_line_for_a_provider_without_a_batch_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "builtin:mixed:2", "--model", "ollama:llama3.1:8b", "--batch", "--no-progress"]) != 0
    error = capsys.readouterr().err.strip()
    assert "--batch needs a provider with a batch API" in error and "\n" not in error


def test_the_progress_line_of_a_batch_run_shows_round_batches_requests_and_waiting() -> None:
    from open_strawberry.cli.progress import _batch_line
    from open_strawberry.pipeline import Progress

    progress = Progress(total=10, resumed=0, done=2, correct=1, graded=2, failed=0, in_flight=8, turns=12,
                        elapsed_s=30.0, input_tokens=100, output_tokens=50, calls_in_flight=8, rate_limited=0,
                        retries=1, batches={"open": 1, "ended": 2},
                        batch_requests={"waiting": 0, "processing": 8, "succeeded": 12, "errored": 1},
                        batch_round=3, batch_waiting_s=25.4)
    assert _batch_line(progress) == ("\nbatch round 3 · batches: 2 ended, 1 open · requests: 8 processing, "
                                     "12 succeeded, 1 errored · waiting 25 s")


def test_the_summary_of_a_batch_run_shows_its_cost_at_batch_prices(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "traces.jsonl"
    with mock_server_process(MockConfig()) as url:
        assert main(["generate", "builtin:letters:4", "--model", f"mock:reasoner@{url}/v1", "--out", str(out),
                     "--no-progress", "--batch", "--batch-poll-s", "0.05", "--price", "mock:reasoner=2,8",
                     "--batch-price", "mock:reasoner=1,1"]) == 0
    records = read_records(out)
    tokens = sum(r.usage.input_tokens + r.usage.output_tokens for r in records)
    summary = capsys.readouterr().out
    assert f"{money(tokens / 1e6)} ({tokens:,} of {tokens:,} tokens at batch prices)" in summary
    assert main(["stats", str(out), "--price", "mock:reasoner=2,8", "--batch-price", "mock:reasoner=1,1"]) == 0
    assert f"{money(tokens / 1e6)} ({tokens:,} of {tokens:,} tokens at batch prices)" in capsys.readouterr().out


def test_prices_for_the_summary_are_refused_with_ray_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "builtin:mixed:2", "--ray", "--price", "mock:reasoner=1,2", "--no-progress"]) != 0
    error = capsys.readouterr().err.strip()
    assert "--price and --batch-price price the summary of a run here" in error and "\n" not in error
