"""The mock in a child process: serving once the context manager yields, stopped on every
way out, and never outliving its parent."""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.errors import OpenStrawberryError
from open_strawberry.mock import MockConfig
from tests.helpers import child_process, stop


def stats(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/mock/stats", timeout=10) as response:
        return json.loads(response.read())


def wait_for_exit(pid: int, timeout_s: float = 15.0) -> bool:
    """Whether process ``pid`` (not necessarily our child) exits within ``timeout_s``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)


def test_the_mock_serves_inside_the_block_and_is_stopped_after_it() -> None:
    with mock_server_process(MockConfig(ttft_s=0.01)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert stats(url)["requests"] == 0
        (child,) = multiprocessing.active_children()
        pid = child.pid
        assert pid is not None
    assert wait_for_exit(pid, 0)  # already stopped when the block is left
    assert multiprocessing.active_children() == []


def test_an_error_in_the_block_stops_the_mock_too() -> None:
    with pytest.raises(RuntimeError, match="boom"), mock_server_process() as url:
        pid = multiprocessing.active_children()[0].pid
        assert pid is not None
        raise RuntimeError("boom")
    assert wait_for_exit(pid, 0)  # stopped before the error left the block
    with pytest.raises(OSError):
        stats(url)


def test_a_mock_that_cannot_start_is_a_clear_error() -> None:
    with pytest.raises(OpenStrawberryError, match="the mock server did not start: cannot serve on 203.0.113.1"), \
            mock_server_process(host="203.0.113.1"):
        pass
    assert multiprocessing.active_children() == []


PARENT = """
import sys
from open_strawberry.bench.mock_process import mock_server_process
import multiprocessing

if __name__ == "__main__":
    with mock_server_process() as url:
        print(multiprocessing.active_children()[0].pid, url, flush=True)
        sys.stdin.read()  # until killed
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_the_mock_never_outlives_its_parent(tmp_path: Path, how: signal.Signals) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    with child_process([sys.executable, str(script)], stdin=subprocess.PIPE, start_new_session=True) as parent:
        assert parent.stdout is not None
        pid, url = parent.stdout.readline().split()
        assert stats(url)["requests"] == 0
        stop(parent, how, group=how == signal.SIGINT, timeout=30)  # Ctrl-C at a terminal: the whole process group
        assert wait_for_exit(int(pid)), "the mock outlived its parent"
