"""A newcomer's offline path, copied from the README: after ``make demo`` (``make`` installs
the virtualenv these tests run from; the ``demo`` command itself is tested in
``tests/cli/test_cli.py``), each command of the README's offline section runs as written, in
its order, in a fresh folder with no API key: ``generate`` starting the mock on demand,
``stats``, ``view`` (served until Ctrl-C), the exports. A README that drifts from the commands
fails here."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from open_strawberry.backends.models import DEFAULT_MOCK_PORT
from tests.helpers import stop
from tests.newcomer import OFFLINE, Newcomer, need_free_ports, option, readme_commands, subcommand, words

VIEW_PORT = 8780  # view's default port, which the README's line uses


def test_the_readme_offline_path_is_the_one_the_issue_asks_for() -> None:
    commands = readme_commands(OFFLINE)
    assert "source .venv/bin/activate" in commands  # the command lives in .venv/bin after make demo
    ran = [subcommand(command) for command in commands]
    assert {"generate", "stats", "view", "export"} <= set(ran), commands
    generate = next(command for command in commands if subcommand(command) == "generate")
    assert "--model" not in words(generate)  # the default model: the mock, started for the run


def served_page(shell: Newcomer, command: str, traces: Path) -> None:
    """Run the README's ``view`` line: its page and its first trace over HTTP, then Ctrl-C."""
    with shell.start(command) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.fullmatch(r"open-strawberry view: serving (http://127\.0\.0\.1:(\d+)/traces\?token=(\S+))\n", line)
        assert url is not None, line
        assert int(url[2]) == VIEW_PORT
        with urllib.request.urlopen(url[1], timeout=10) as response:
            assert response.status == 200 and b"traces.js" in response.read()
        first = urllib.request.Request(f"http://127.0.0.1:{url[2]}/api/traces/0", headers={"X-UI-Token": url[3]})
        with urllib.request.urlopen(first, timeout=10) as response:
            shown = json.loads(response.read())
        assert json.loads(traces.read_text().splitlines()[0])["trace_id"] in json.dumps(shown)
        _, err = stop(process, group=True, timeout=30)
    assert process.returncode == 0, err


def test_the_readme_offline_path_runs_as_written(tmp_path: Path) -> None:
    need_free_ports(DEFAULT_MOCK_PORT, VIEW_PORT)
    shell = Newcomer(tmp_path)
    printed = {}  # {subcommand: (stdout, stderr)} of the README's first line of each
    for command in readme_commands(OFFLINE):
        if subcommand(command) == "view":
            served_page(shell, command, tmp_path / words(command)[2])
            continue
        result = shell.run(command)
        if result is None:  # source or make
            continue
        assert result.returncode == 0, f"`{command}` failed:\n{result.stderr[-3000:]}"
        printed.setdefault(subcommand(command), (result.stdout, result.stderr))
        if "--out" in words(command):
            written = tmp_path / option(command, "--out")
            assert written.is_file() and written.read_text().count("\n") > 0, command
    assert "started the mock LLM" in printed["generate"][1]  # on demand, and said so
    assert "pass@1" in printed["stats"][0]
    generate = next(command for command in readme_commands(OFFLINE) if subcommand(command) == "generate")
    problems = int(words(generate)[2].rsplit(":", 1)[1])  # builtin:SET:COUNT
    samples = int(option(generate, "--samples")) if "--samples" in words(generate) else 1
    records = [json.loads(line) for line in (tmp_path / option(generate, "--out")).read_text().splitlines()]
    assert len(records) == problems * samples
    assert all(record["status"] in ("final", "max_turns") for record in records)
