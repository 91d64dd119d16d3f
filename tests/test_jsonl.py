"""The JSONL reader: line numbers in errors, blank lines passed over, and the caller's policy
for a torn last line."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from open_strawberry.errors import ConfigurationError
from open_strawberry.jsonl import read_jsonl

_decoder = msgspec.json.Decoder(dict[str, Any])


class _Strict(ConfigurationError):
    pass


def test_lines_stream_with_their_numbers_and_offsets_and_blank_lines_are_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n{"a": 2}\n')
    lines = list(read_jsonl(path, _decoder))
    assert [(line.number, line.value) for line in lines] == [(1, {"a": 1}), (4, {"a": 2})]
    with path.open("rb") as file:
        file.seek(lines[1].offset)
        assert file.readline() == b'{"a": 2}\n'


def test_a_bad_line_names_the_file_and_the_line_after_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{not json}\n{"a": 3}\n')
    rows = read_jsonl(path, _decoder, invalid="not a row ({reason})", error=_Strict)
    assert next(rows).value == {"a": 1}
    with pytest.raises(_Strict, match=rf"^{re.escape(str(path))}:3: not a row \(JSON is malformed"):
        next(rows)


def test_a_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope.jsonl: cannot read the rows file: No such file"):
        list(read_jsonl(tmp_path / "nope.jsonl", _decoder, kind="rows file"))


def test_a_torn_last_line_is_kept_by_default(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert [line.value for line in read_jsonl(path, _decoder)] == [{"a": 1}, {"a": 2}]


def test_a_torn_last_line_may_be_skipped_leaving_the_file_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2, "b')
    with capture_logs() as logs:
        assert [line.value for line in read_jsonl(path, _decoder, torn="skip")] == [{"a": 1}]
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2, "b'
    assert [(log["event"], log["line"]) for log in logs] == [("torn_last_line_skipped", 2)]


def test_a_torn_last_line_may_be_cut_off_so_appends_start_clean(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2, "b')
    with capture_logs() as logs:
        assert [line.value for line in read_jsonl(path, _decoder, torn="truncate")] == [{"a": 1}]
    assert path.read_bytes() == b'{"a": 1}\n'
    assert [(log["event"], log["dropped_bytes"]) for log in logs] == [("repaired_torn_line", 11)]


def test_an_early_stop_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    with closing(read_jsonl(path, _decoder)) as rows:
        assert next(rows).value == {"a": 1}
    assert rows.gi_frame is None  # finished: its with block has closed the file
