"""The test suite's own guarantees: an unclosed stream fails the test that leaked it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_an_unclosed_memory_stream_fails_the_test(pytester: pytest.Pytester) -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    pytester.makeini(
        "[pytest]\n"
        f"asyncio_mode = {options['asyncio_mode']}\n"
        f"asyncio_default_fixture_loop_scope = {options['asyncio_default_fixture_loop_scope']}\n"
        "filterwarnings =\n" + "".join(f"    {rule}\n" for rule in options["filterwarnings"])
    )
    pytester.makepyfile(
        """
        import anyio

        async def test_leaks_a_stream():
            send, receive = anyio.create_memory_object_stream(1)
            receive.close()

        async def test_closes_its_streams():
            send, receive = anyio.create_memory_object_stream(1)
            send.close()
            receive.close()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_leaks_a_stream*"])
