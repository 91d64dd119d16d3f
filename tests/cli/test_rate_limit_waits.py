"""A run held up by its rate limits says so, and Ctrl-C does not wait for them.

The server answers every call, with headers that say its token budget is spent for three years
(``x-ratelimit-remaining-tokens: 0``, ``x-ratelimit-reset-tokens: 99999999s``) of a budget of
60 tokens a minute: every call after the first waits up to a minute for the refill. The run
shows the wait in its progress and log (``rate_limit_wait``); a Ctrl-C then ends it at once,
and a rerun makes the traces whose calls were never sent.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteReceiveStream

from open_strawberry.cli.progress import ProgressDisplay
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.ui import Monitor
from tests.cli.test_cli import read_records
from tests.misbehaving import open_misbehaving_server

pytestmark = pytest.mark.anyio

PROBLEMS = 12


def _command(url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "open_strawberry.cli", "generate", f"builtin:mixed:{PROBLEMS}", "--model",
            f"openai:gpt-4o-mini@{url}", "--out", str(out), "--no-progress", "--max-turns", "2"]


async def _read_until(stream: ByteReceiveStream, needle: bytes) -> bytes:
    """Everything ``stream`` gave up to and including the first ``needle``."""
    seen = b""
    async for chunk in stream:
        seen += chunk
        if needle in seen:
            return seen
    raise AssertionError(f"the stream ended without {needle!r}: {seen.decode(errors='replace')}")


async def test_ctrl_c_ends_calls_waiting_for_a_spent_budget_at_once_and_a_rerun_makes_them(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key-0123456789"}
    async with open_misbehaving_server("throttled") as server:
        command = _command(server.openai_base_url, out)
        async with await anyio.open_process(command, env=env) as process:
            assert process.stderr is not None and process.stdout is not None
            with anyio.fail_after(60):
                said = await _read_until(process.stderr, b"rate_limit_wait")  # calls wait for the budget now
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(20):  # the wait alone is a minute a call, and a dozen calls wait
                rest = b"".join([chunk async for chunk in process.stderr])
                await process.wait()
        stderr = (said + rest).decode(errors="replace")
        assert process.returncode == 130, stderr
        assert "waiting_calls_withdrawn" in stderr and "Traceback" not in stderr
        first = read_records(out) if out.exists() else []  # whole lines only, each a complete record
        assert len(first) < PROBLEMS

        server.token_limit = 10**9  # the budget is back: the rerun goes at once
        with anyio.fail_after(120):
            rerun = await anyio.run_process(command, env=env, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode(errors="replace")
    records = read_records(out)
    assert records[:len(first)] == first
    pairs = sorted((r.problem_id, r.sample) for r in records)
    assert pairs == sorted((p.id, 0) for p in builtin_problems("mixed", PROBLEMS))  # each pair once: none lost


async def test_a_long_wait_for_the_budget_is_shown_in_the_progress(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0123456789")
    shown: list[Progress] = []
    waiting = anyio.Event()
    monitor = Monitor()  # the web UI's monitor shows it too
    options = monitor.generate_options()

    def on_progress(progress: Progress) -> None:
        options["on_progress"](progress)
        shown.append(progress)
        if progress.waiting:
            waiting.set()

    async with open_misbehaving_server("throttled") as server, anyio.create_task_group() as tg:
        model = f"openai:gpt-4o-mini@{server.openai_base_url}"
        config = GenerateConfig(problems=f"builtin:mixed:{PROBLEMS}", model=model, out=str(tmp_path / "t.jsonl"),
                                max_turns=2)
        tg.start_soon(lambda: generate(config, **{**options, "on_progress": on_progress}, progress_every_s=0.05))
        with anyio.fail_after(60):
            await waiting.wait()
        limiter = monitor.snapshot().limiters["generator"]
        tg.cancel_scope.cancel()  # the wait is a minute a call: the test has seen what it came for
    monitor.close()
    assert limiter.waiting_for == "the token budget" and 5 < limiter.waiting_left_s <= 60
    said = shown[-1].waiting
    assert said is not None and said.endswith(f" s for the token budget of {model}"), said
    assert 5 < float(said.split(" s ")[0]) <= 60  # a long wait, and no longer than a minute's refill
    display = ProgressDisplay("run", file=io.StringIO(), force=True)
    with display:
        display.update(shown[-1])
    printed = " ".join(display.console.file.getvalue().split())  # type: ignore[attr-defined]
    assert f"WAITING {said}" in printed  # the line may wrap where a space was


async def test_a_long_wait_of_the_verifier_is_shown_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from open_strawberry.mock import open_mock_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0123456789")
    shown: list[str] = []
    waiting = anyio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.waiting:
            shown.append(progress.waiting)
            waiting.set()

    async with open_misbehaving_server("throttled") as server, open_mock_server() as mock, \
            anyio.create_task_group() as tg:
        verifier = f"openai:gpt-4o-mini@{server.openai_base_url}"
        config = GenerateConfig(problems=f"builtin:mixed:{PROBLEMS}", model=f"mock:reasoner@{mock.url}/v1",
                                out=str(tmp_path / "t.jsonl"), max_turns=3, strategy="verify", verify_every=1,
                                verifier_model=verifier)
        tg.start_soon(lambda: generate(config, on_progress=on_progress, progress_every_s=0.05))
        with anyio.fail_after(60):
            await waiting.wait()
        tg.cancel_scope.cancel()
    assert shown[-1].endswith(f" s for the token budget of {verifier}"), shown
