"""``open-strawberry view`` and ``generate --ui`` from the command line, what starting loads,
and what the shipped pages may not do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from importlib.resources import files
from pathlib import Path

import pytest

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.cli import main
from open_strawberry.mock import MockConfig
from tests.helpers import child_process, stop
from tests.traces.records import record, write
from tests.ui.support import read_records

UI_MODULES = {"open_strawberry.ui", "open_strawberry.ui.server", "aiohttp.web"}  # cli.view loads them to serve


def loaded_after(code: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + "\nimport json, sys\nsys.__stdout__.write('\\n' + json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_package_and_help_load_no_web_server() -> None:
    assert not loaded_after("import open_strawberry") & UI_MODULES
    help_run = """
        import contextlib, io
        from open_strawberry.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
    """
    assert not loaded_after(help_run) & UI_MODULES
    assert not loaded_after(help_run.replace('"--help"', '"generate", "--help"')) & UI_MODULES


def test_view_serves_until_interrupted(tmp_path: Path) -> None:
    traces = write(tmp_path / "traces.jsonl", [record("p1", 0, True, ["a step"])])
    command = [sys.executable, "-m", "open_strawberry.cli", "view", str(traces), "--port", "0",
               "--save-to", str(tmp_path / "saved.jsonl")]
    with child_process(command) as process:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the server listens
        url = re.fullmatch(r"open-strawberry view: serving (http://127\.0\.0\.1:\d+/traces\?token=\S+)\n", line)
        assert url is not None, line
        with urllib.request.urlopen(url[1], timeout=10) as response:
            assert response.status == 200 and b"traces.js" in response.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url[1].split("?")[0], timeout=10)
        assert refused.value.code == 403
        refused.value.close()
        stop(process, timeout=30)
    assert process.returncode == 0


def test_view_names_a_missing_file_and_a_remote_bind_needs_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nothing.jsonl"), "--port", "0"]) == 1
    assert "nothing.jsonl: no such traces file" in capsys.readouterr().err
    assert main(["view", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "--allow-remote" in capsys.readouterr().err


def test_generate_ui_serves_the_monitor_for_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "traces.jsonl"
    with mock_server_process(MockConfig()) as url:
        status = main(["generate", "builtin:letters:4", "--model", f"mock:reasoner@{url}/v1", "--out", str(out),
                       "--no-progress", "--ui", "--ui-price", "mock:reasoner=1,2"])
    assert status == 0
    err = capsys.readouterr().err
    assert re.search(r"watch the run at http://127\.0\.0\.1:\d+/monitor\?token=\S+", err), err
    assert len(read_records(out)) == 4
    assert main(["generate", "builtin:letters:4", "--out", str(tmp_path / "t2.jsonl"), "--no-progress",
                 "--ui", "--ui-price", "mock:reasoner=cheap"]) == 1
    assert "--ui-price" in capsys.readouterr().err


def test_the_pages_never_put_text_into_the_document_as_html() -> None:
    static = files("open_strawberry.ui").joinpath("static")
    scripts = {entry.name: entry.read_text() for entry in static.iterdir() if entry.name.endswith(".js")}
    assert {"common.js", "charts.js", "monitor.js", "traces.js", "playground.js"} <= set(scripts)
    for name, source in scripts.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, f"{name} uses {sink}"
    for page in ("monitor.html", "traces.html", "playground.html"):
        html = static.joinpath(page).read_text()
        assert "__CONFIG__" in html and "<script>" not in html  # scripts only from files
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page} has an inline event handler"
