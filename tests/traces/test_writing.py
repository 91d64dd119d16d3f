"""Derived files are written whole or not at all, and never over their own inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_strawberry import ConfigurationError
from open_strawberry.traces import export_dpo, export_sft, select_problems, write_manifest
from open_strawberry.traces.files import manifest_path, write_lines_atomically
from tests.traces.records import record, write


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def lines_then(error: BaseException) -> Iterator[bytes]:
    yield b"one\n"
    yield b"two\n"
    raise error


@pytest.mark.parametrize("error", [ValueError("bad line"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_failed_write_leaves_the_old_output_and_no_temporary_file(tmp_path: Path, error: BaseException) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"before\n")
    with pytest.raises(type(error)):
        write_lines_atomically(out, lines_then(error))
    assert out.read_bytes() == b"before\n"
    assert names(tmp_path) == {"out.jsonl"}


def test_a_new_output_gets_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_lines_atomically(tmp_path / "out.jsonl", [b"a\n"])
        write_manifest(tmp_path / "out.jsonl", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644
    assert manifest_path(tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o644
    assert names(tmp_path) == {"out.jsonl", "out.jsonl.manifest.json"}


def test_a_manifest_that_cannot_be_written_leaves_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    write_manifest(out, {"run": 1})
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular"):
        write_manifest(out, circular)
    assert json.loads(manifest_path(out).read_text()) == {"run": 1}
    assert names(tmp_path) == {"t.jsonl.manifest.json"}


def test_a_failed_export_leaves_no_partial_file(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s1"])])
    with traces.open("ab") as file:
        file.write(b'{"problem_id": "b"}\n')
    out = tmp_path / "sft.jsonl"
    out.write_bytes(b"earlier export\n")
    with pytest.raises(ConfigurationError, match=r"t.jsonl:2: not a trace record"):
        export_sft(traces, out)
    assert out.read_bytes() == b"earlier export\n"
    assert names(tmp_path) == {"t.jsonl", "sft.jsonl"}


def spellings(tmp_path: Path, traces: Path) -> dict[str, Path]:
    (tmp_path / "link.jsonl").symlink_to(traces.name)
    os.link(traces, tmp_path / "hard.jsonl")
    return {"the same path": traces, "another spelling": tmp_path / "." / "sub" / ".." / traces.name,
            "a symlink": tmp_path / "link.jsonl", "a hard link": tmp_path / "hard.jsonl"}


@pytest.mark.parametrize("spelling", ["the same path", "another spelling", "a symlink", "a hard link"])
def test_an_output_that_is_its_own_input_is_refused_whatever_its_name(tmp_path: Path, spelling: str) -> None:
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s1"]), record("a", 1, False, ["s1", "s2"]),
                                          record("b", 0, False, ["s1"])])
    (tmp_path / "sub").mkdir()
    before = traces.read_bytes()
    out = spellings(tmp_path, traces)[spelling]
    with pytest.raises(ConfigurationError, match="is the input file"):
        export_sft(traces, out)
    with pytest.raises(ConfigurationError, match="is the input file"):
        export_dpo(traces, out)
    with pytest.raises(ConfigurationError, match="is the input file"):
        select_problems(traces, out, min_pass=0, max_pass=1)
    earlier = write(tmp_path / "round1.jsonl", [record("z", 0, True, ["s1"])])
    with pytest.raises(ConfigurationError, match="is the input file"):
        select_problems(tmp_path / "round1.jsonl", out, exclude=[traces])
    assert traces.read_bytes() == before and earlier.exists()
    assert not [name for name in names(tmp_path) if name.endswith((".tmp", ".partial"))]
