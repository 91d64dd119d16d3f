"""``generate --ui``: a run that ends fast keeps its monitor up while the command holds it
(until Ctrl-C at a terminal), so the printed URL is not dead before it is opened."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest

from open_strawberry.cli.generate import generate_with_monitor
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, RunSummary


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


async def test_the_monitor_stays_up_after_the_run_until_released(tmp_path: Path) -> None:
    held = anyio.Event()
    release = anyio.Event()
    seen: list[tuple[RunSummary, str]] = []

    async def hold(summary: RunSummary, url: str) -> None:
        seen.append((summary, url))
        held.set()
        await release.wait()

    async with open_mock_server(MockConfig()) as server, anyio.create_task_group() as tg:
        config = GenerateConfig(problems="builtin:letters:2", model=f"mock:reasoner@{server.url}/v1",
                                out=str(tmp_path / "t.jsonl"))
        tg.start_soon(lambda: generate_with_monitor(config, port=0, prices={}, on_progress=lambda _: None,
                                                    hold=hold))
        with anyio.fail_after(60):
            await held.wait()
        (summary, url), = seen
        assert summary.written == 2  # the run is over...
        assert await anyio.to_thread.run_sync(status_of, url) == 200  # ...and its page still opens
        release.set()
    with pytest.raises(urllib.error.URLError):
        await anyio.to_thread.run_sync(status_of, url)  # released: the server stopped


async def test_without_a_hold_the_monitor_stops_and_says_how_to_browse_the_traces(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with open_mock_server(MockConfig()) as server:
        config = GenerateConfig(problems="builtin:letters:2", model=f"mock:reasoner@{server.url}/v1",
                                out=str(tmp_path / "t.jsonl"))
        await generate_with_monitor(config, port=0, prices={}, on_progress=lambda _: None)
    assert f"open-strawberry view {tmp_path / 't.jsonl'}" in capsys.readouterr().err
