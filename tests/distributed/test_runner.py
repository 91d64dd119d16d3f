"""The driver without Ray: what it checks before starting Ray, and the message when Ray is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from open_strawberry.cli import main
from open_strawberry.distributed import INSTALL_HINT, combine_progress, generate_on_ray
from open_strawberry.errors import ConfigurationError
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, Progress, generate


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError


def config(server: MockServer, tmp_path: Path) -> GenerateConfig:
    return GenerateConfig(problems="builtin:mixed:6", model=f"mock:reasoner@{server.url}/v1",
                          out=str(tmp_path / "traces.jsonl"), max_traces=4)


async def test_without_ray_installed_the_error_says_how_to_install_it(
        no_ray: None, mock_server: MockServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"pip install 'open-strawberry\[ray\]'"):
        await generate_on_ray(config(mock_server, tmp_path))
    assert INSTALL_HINT == "pip install 'open-strawberry[ray]'"


async def test_a_finished_run_is_not_started_again(no_ray: None, mock_server: MockServer, tmp_path: Path) -> None:
    await generate(config(mock_server, tmp_path))
    served = mock_server.requests
    summary = await generate_on_ray(config(mock_server, tmp_path))  # nothing to make: no Ray needed
    assert (summary.resumed, summary.written, summary.planned) == (6, 0, 6)
    assert mock_server.requests == served


async def test_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="workers must be at least 1"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", out=str(tmp_path / "t.jsonl")), workers=0)
    with pytest.raises(ConfigurationError, match="empty server URL"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", model="vllm:q@http://a:1/v1,",
                                             out=str(tmp_path / "t.jsonl")))
    assert not (tmp_path / "t.jsonl").exists()


def test_the_ray_options_need_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "builtin:mixed:2", "--out", str(tmp_path / "t.jsonl"), "--ray-workers", "2"]) == 1
    assert "--ray-workers needs --ray" in capsys.readouterr().err


def test_the_command_line_says_how_to_install_ray(no_ray: None, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Ray is needed before any call: the server need not exist
    code = main(["generate", "builtin:mixed:2", "--model", "mock:reasoner@http://127.0.0.1:9/v1",
                 "--out", str(tmp_path / "t.jsonl"), "--no-progress", "--ray"])
    assert code == 1
    assert "pip install 'open-strawberry[ray]'" in capsys.readouterr().err


def test_progress_of_the_shards_adds_up() -> None:
    def shard(done: int, resumed: int, correct: int, stopped: str | None = None) -> Progress:
        return Progress(total=10, resumed=resumed, done=done, correct=correct, graded=done, failed=0, in_flight=2,
                        turns=3 * done, elapsed_s=1.0, input_tokens=100, output_tokens=10, calls_in_flight=1,
                        rate_limited=1, retries=0, stopped=stopped)

    combined = combine_progress({0: shard(4, 0, 3), 1: shard(2, 3, 1, "AuthenticationError: no")}, total=20,
                                resumed=7, elapsed_s=2.0)
    assert (combined.total, combined.resumed, combined.done, combined.correct) == (20, 7, 9, 4)
    assert (combined.in_flight, combined.turns, combined.rate_limited) == (4, 18, 2)
    assert combined.stopped == "AuthenticationError: no" and combined.elapsed_s == 2.0
