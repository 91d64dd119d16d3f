"""The model servers of a run: the default mock started on demand, and errors that say how
to start a local server."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from open_strawberry.backends.models import PROVIDERS, Provider
from open_strawberry.errors import ConfigurationError
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.pipeline.servers import start_hint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


@pytest.fixture
def mock_default_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The mock providers' default address moved to a free port (8765 may be taken on a test machine)."""
    port = free_port()
    monkeypatch.setitem(PROVIDERS, "mock", Provider("openai", f"http://127.0.0.1:{port}/v1", None, False))  # type: ignore[index]
    monkeypatch.setitem(PROVIDERS, "mock-anthropic", Provider("anthropic", f"http://127.0.0.1:{port}", None, False))  # type: ignore[index]
    return port


@pytest.mark.parametrize("model", ["mock:reasoner", "mock-anthropic:reasoner"])
async def test_a_default_mock_with_nothing_listening_is_started_for_the_run_and_stopped_with_it(
        tmp_path: Path, mock_default_port: int, capsys: pytest.CaptureFixture[str], model: str) -> None:
    summary = await generate(problems="builtin:mixed:6", model=model, out=str(tmp_path / "t.jsonl"), samples=2)
    assert summary.written == 12 and summary.statuses.get("error", 0) == 0
    assert "started the mock LLM there for this run" in capsys.readouterr().err
    assert not await listening(mock_default_port)


async def test_a_running_mock_at_the_default_address_is_used_not_replaced(
        tmp_path: Path, mock_default_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with open_mock_server(MockConfig(), port=mock_default_port) as server:
        summary = await generate(problems="builtin:mixed:3", model="mock:reasoner", out=str(tmp_path / "t.jsonl"))
        assert server.requests > 0
    assert summary.written == 3
    assert "started the mock" not in capsys.readouterr().err


async def test_a_mock_at_a_url_of_its_own_is_not_started_and_the_error_names_the_command(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ConfigurationError, match=rf"open-strawberry mock-server --port {port}"):
        await generate(problems="builtin:mixed:3", model=f"mock:m@http://127.0.0.1:{port}/v1",
                       out=str(tmp_path / "t.jsonl"))
    assert not (tmp_path / "t.jsonl").exists()


def test_the_hint_names_the_command_that_starts_a_local_server() -> None:
    assert start_hint("mock", "http://127.0.0.1:8765/v1") == "start one with: open-strawberry mock-server"
    assert start_hint("llamacpp", "http://localhost:8080/v1") == \
        "start one with: open-strawberry serve MODEL --port 8080"
    assert start_hint("vllm", "http://127.0.0.1:8000/v1") == "is it running?"
    assert start_hint("mock", "http://gpu-box:8765/v1") == "is it running?"  # not this machine's to start

