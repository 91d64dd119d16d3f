"""generate() refuses what no run can use, before it touches anything, and never lets two runs
write one file."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from open_strawberry.errors import ConfigurationError
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.traces import read_traces


def config(server: MockServer, tmp_path: Path, **options: object) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:arithmetic:6", "model": f"mock:reasoner@{server.url}/v1",
                             "out": str(tmp_path / "traces.jsonl"), "max_traces": 4, **options})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("rpm", 0.0, "rpm must be a number above 0"), ("rpm", -1.0, "rpm must be a number above 0"),
     ("tpm", 0.0, "tpm must be a number above 0"), ("max_concurrency", 0, "max_concurrency must be at least 1"),
     ("max_concurrency", -1, "max_concurrency must be at least 1"), ("temperature", math.nan, "temperature"),
     ("timeout_s", -1.0, "timeout_s must be a number above 0"), ("max_trace_tokens", 0, "max_trace_tokens"),
     ("veto_below", 5.0, "veto_below must be between 0 and 1"), ("call_timeout_s", math.inf, "call_timeout_s"),
     ("grader", "nosuch", "unknown grader 'nosuch'"),
     ("model", "openai:x@http://127.0.0.1:notaport/v1", "not valid")],
)
async def test_options_no_run_can_use_are_refused_before_anything_is_written(
        mock_server: MockServer, tmp_path: Path, option: str, value: object, message: str) -> None:
    with anyio.fail_after(30), pytest.raises(ConfigurationError, match=message):
        await generate(config(mock_server, tmp_path), **{option: value})
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a test's own temporary folder
    assert mock_server.requests == 0


async def test_a_refused_run_leaves_the_previous_manifest_alone(mock_server: MockServer, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    summary = await generate(config(mock_server, tmp_path))
    manifest = anyio.Path(summary.manifest)
    before = await manifest.read_bytes()
    with pytest.raises(ConfigurationError):
        await generate(config(mock_server, tmp_path, grader="nosuch"))
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="VLLM_KEY_THAT_IS_NOT_SET"):
        await generate(config(mock_server, tmp_path, api_key_env="VLLM_KEY_THAT_IS_NOT_SET"))
    assert await manifest.read_bytes() == before


async def test_an_output_that_is_a_directory_is_one_clear_error(mock_server: MockServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        await generate(config(mock_server, tmp_path, out=str(tmp_path)))


async def test_a_second_run_on_the_same_file_is_refused_and_nothing_is_written_twice(tmp_path: Path) -> None:
    running = anyio.Event()

    def started(_progress: Progress) -> None:
        running.set()

    async with open_mock_server(MockConfig(ttft_s=0.05, confident_after=2)) as server:
        async with anyio.create_task_group() as tg:
            async def first() -> None:
                await generate(config(server, tmp_path, samples=4), on_progress=started, progress_every_s=0.05)

            tg.start_soon(first)
            with anyio.fail_after(30):
                await running.wait()
            with pytest.raises(ConfigurationError, match=r"being written by another run \(pid \d+"):
                await generate(config(server, tmp_path, samples=4))
    records = list(read_traces(tmp_path / "traces.jsonl"))
    pairs = [(r.problem_id, r.sample) for r in records]
    assert len(pairs) == len(set(pairs)) == 24
    assert not (tmp_path / "traces.jsonl.lock").exists()  # released at the end


async def test_a_problems_file_cannot_send_the_key_to_its_own_judge(
        mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-that-host-1234567890")
    async with open_mock_server() as thief:
        problems = anyio.Path(tmp_path / "p.jsonl")
        await problems.write_text('{"id": "a", "prompt": "2+2?", "answer": "4", '
                                  f'"grader": "judge:openai:gpt-4o@{thief.url}/v1"}}\n')
        with pytest.raises(ConfigurationError, match="not allowed in a problems file"):
            await generate(config(mock_server, tmp_path, problems=str(problems)))
        assert thief.requests == 0 and mock_server.requests == 0


async def test_a_wrong_key_stops_admission_and_a_rerun_with_retry_failed_finishes_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_KEY", "wrong-key-123456")
    async with open_mock_server(MockConfig(api_key="right-key-654321")) as server:
        failed = await generate(config(server, tmp_path, problems="builtin:arithmetic:200", max_traces=4,
                                       api_key_env="MOCK_KEY"))
        assert failed.stopped is not None and failed.stopped.startswith("AuthenticationError")
        assert "wrong-key-123456" not in failed.stopped
        assert failed.written < 20  # admission stopped: not 200 failed records
        assert failed.failed == failed.written
        monkeypatch.setenv("MOCK_KEY", "right-key-654321")
        plain = await generate(config(server, tmp_path, problems="builtin:arithmetic:200", max_traces=4,
                                      api_key_env="MOCK_KEY"))  # no --retry-failed: failed pairs stay done
        assert plain.resumed == failed.written and plain.failed == 0
        retried = await generate(config(server, tmp_path, problems="builtin:arithmetic:200", max_traces=4,
                                        api_key_env="MOCK_KEY", retry_failed=True))
    assert retried.written == failed.written and retried.failed == 0 and retried.stopped is None
    records = list(read_traces(tmp_path / "traces.jsonl"))
    pairs = [(r.problem_id, r.sample) for r in records]
    assert len(pairs) == len(set(pairs)) == 200 and all(r.status != "error" for r in records)
    aside = list(read_traces(tmp_path / "traces.jsonl.failed.jsonl"))  # nothing lost: the failures kept apart
    assert len(aside) == failed.written and all(r.status == "error" for r in aside)


def test_the_exit_code_says_whether_the_run_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from open_strawberry.bench.mock_process import mock_server_process
    from open_strawberry.cli import main

    with mock_server_process(MockConfig(api_key="right-key-654321")) as url:
        argv = ["generate", "builtin:arithmetic:30", "--model", f"mock:reasoner@{url}/v1",
                "--out", str(tmp_path / "t.jsonl"), "--api-key-env", "MOCK_KEY", "--no-progress"]
        monkeypatch.setenv("MOCK_KEY", "wrong-key-123456")
        assert main(argv) == 3
        assert "the run stopped early: AuthenticationError" in capsys.readouterr().err
        monkeypatch.setenv("MOCK_KEY", "right-key-654321")
        assert main([*argv, "--retry-failed"]) == 0


async def test_no_key_or_url_password_reaches_the_manifest_or_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "tok_" + "QwErTyUiOpAsDfGhJkLzXcVbNm1234"
    monkeypatch.setenv("ODD_KEY", key)
    async with open_mock_server() as server:
        url = server.url.replace("http://", "http://admin:hunter2secret@")
        # Anthropic's wire format: its x-api-key goes beside the URL's basic auth (a bearer key
        # would clash with it, and is refused before the run)
        summary = await generate(config(server, tmp_path, model=f"mock-anthropic:reasoner@{url}/v1",
                                        api_key_env="ODD_KEY"), command=["open-strawberry", "generate", "--note", key])
    written = (await anyio.Path(summary.manifest).read_text()) + (await anyio.Path(summary.out).read_text())
    assert key not in written and "hunter2secret" not in written
    assert "***" in written


async def test_several_server_urls_without_ray_are_refused(mock_server: MockServer, tmp_path: Path) -> None:
    model = f"mock:reasoner@{mock_server.url}/v1,{mock_server.url}/v1"
    with pytest.raises(ConfigurationError, match="several server URLs"):
        await generate(config(mock_server, tmp_path, model=model))
    assert mock_server.requests == 0
