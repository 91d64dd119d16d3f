"""A newcomer's first real model, copied from the README: ``make test-real`` (what these tests
need installed, so not run again), ``serve smollm2`` until it prints its model string, the
README's ``generate`` line against it, then Ctrl-C: the server and its llama-server are gone.
Run as written, in a fresh folder with the README's ``source .venv/bin/activate`` and no key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_strawberry.serving.local import DEFAULT_PORT
from tests.helpers import descendants, gone, stop
from tests.newcomer import (
    OFFLINE,
    REAL,
    Newcomer,
    need_free_ports,
    option,
    port_is_free,
    readme_commands,
    subcommand,
    words,
)

pytestmark = pytest.mark.timeout(900)


def test_the_readme_real_model_path_runs_as_written(tmp_path: Path) -> None:
    commands = readme_commands(REAL)
    assert commands[0].startswith("make test-real"), commands
    serve = next(command for command in commands if subcommand(command) == "serve")
    generate = next(command for command in commands if subcommand(command) == "generate")
    need_free_ports(DEFAULT_PORT)
    shell = Newcomer(tmp_path, OPEN_STRAWBERRY_CACHE=str(tmp_path / "cache"))
    for command in readme_commands(OFFLINE):
        if command.startswith("source "):  # the shell the offline section left the newcomer in
            shell.run(command)
    with shell.start(serve) as server:
        assert server.stdout is not None
        printed = server.stdout.readline().strip()  # once the server answers
        assert printed == option(generate, "--model"), (printed, server.poll())  # the README's line uses it
        started = descendants(server.pid)
        result = shell.run(generate, timeout=800)
        assert result is not None and result.returncode in (0, 3), result and result.stderr[-3000:]  # 3: some failed
        problems = int(words(generate)[2].rsplit(":", 1)[1])  # builtin:SET:COUNT
        records = [json.loads(line) for line in (tmp_path / option(generate, "--out")).read_text().splitlines()]
        assert len(records) == problems and all(record["status"] != "error" for record in records), result.stderr
        assert all(record["model"].startswith("llamacpp:smollm2") for record in records)
        _, err = stop(server, group=True)  # Ctrl-C at the terminal
        assert server.returncode == 130, err
        assert started and all(gone(pid) for pid in started), "llama-server outlived serve"
        assert port_is_free(DEFAULT_PORT)
