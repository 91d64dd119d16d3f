"""The README's shell commands, read from the page and run as a newcomer runs them: in a folder
of their own that holds the project's ``.venv`` (as a clone does after ``make demo``), through
bash, with no API key in the environment and the virtualenv on ``PATH`` only once the README's
``source .venv/bin/activate`` has put it there. Used by ``tests/test_newcomer.py`` (the offline
path) and ``tests/real/test_newcomer.py`` (a real local model)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import child_process

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

OFFLINE = "After the demo: the offline path"
REAL = "A real model on this machine"

_SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def readme_commands(section: str) -> list[str]:
    """The commands of the shell blocks under the README's ``## section`` heading, in order: a
    line continued with a backslash joined to the next, blank and comment lines dropped (a
    trailing comment stays: bash reads it as one)."""
    text = README.read_text()
    heading = re.search(rf"^## {re.escape(section)}\n", text, re.MULTILINE)
    if heading is None:
        pytest.fail(f"README.md has no section '## {section}' (the newcomer's path is read from it)")
    end = text.find("\n## ", heading.end())
    body = text[heading.end():] if end == -1 else text[heading.end():end]
    commands = []
    for block in _SHELL_BLOCK.finditer(body):
        joined = re.sub(r"\\\n\s*", "", block[1])
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return commands


def words(command: str) -> list[str]:
    """``command`` as the shell splits it, its comment left out."""
    return shlex.split(command, comments=True)


def subcommand(command: str) -> str | None:
    """The open-strawberry command a line runs (``"generate"``), or None for any other line."""
    argv = words(command)
    return argv[1] if len(argv) > 1 and argv[0] == "open-strawberry" else None


def option(command: str, name: str) -> str:
    """The value ``command`` gives option ``name`` (``--out``)."""
    argv = words(command)
    for index, word in enumerate(argv):
        if word == name:
            return argv[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    raise AssertionError(f"the README's `{command}` gives no {name}")


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def need_free_ports(*ports: int) -> None:
    """Skip when one of the README's default ports is taken on this machine (the commands, as
    written, use them)."""
    taken = [port for port in ports if not port_is_free(port)]
    if taken:
        pytest.skip(f"127.0.0.1:{taken[0]} is in use here, and the README's commands use it")


class Newcomer:
    """A shell in a fresh folder beside the project's virtualenv (``.venv``, a link to the one
    running the tests), without API keys and without the virtualenv on ``PATH``.

    A ``source`` line is kept and runs before each later command, as in an interactive shell;
    a ``make`` line is what set up this virtualenv and is not run again."""

    def __init__(self, folder: Path, **environment: str) -> None:
        venv = Path(sys.prefix)
        if not (venv / "bin" / "activate").is_file():
            pytest.fail(f"{sys.prefix} is not a virtualenv: run the tests from the project's .venv (make test)")
        self.folder = folder
        (folder / ".venv").symlink_to(venv, target_is_directory=True)
        bins = {str(venv / "bin"), str(Path(sys.executable).parent)}
        path = os.pathsep.join(entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry not in bins)
        self.env = {key: value for key, value in os.environ.items()
                    if not key.endswith("_API_KEY") and key != "VIRTUAL_ENV"}
        self.env.update(PATH=path, **environment)
        self.setup: list[str] = []  # the source lines so far

    def _script(self, command: str) -> list[str]:
        return ["bash", "-c", "\n".join([*self.setup, command])]

    def run(self, command: str, *, timeout: float = 300) -> subprocess.CompletedProcess[str] | None:
        """Run one README line to its end; None for a ``source`` or ``make`` line (see the class)."""
        if command.startswith("source "):
            self.setup.append(command)
            return None
        if command.startswith("make "):
            return None
        return subprocess.run(self._script(command), cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    @contextlib.contextmanager
    def start(self, command: str) -> Iterator[subprocess.Popen[str]]:
        """A README line that serves until Ctrl-C, started in a process group of its own (stop
        it with ``tests.helpers.stop(process, group=True)``, as a terminal's Ctrl-C); killed
        when the block ends while it still runs."""
        with child_process(self._script(command), cwd=self.folder, env=self.env, start_new_session=True) as process:
            try:
                yield process
            finally:  # what it started goes too, had it outlived the command
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

