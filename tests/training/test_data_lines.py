"""Every line of a training file is checked, not only the first: a bad line 3 after two good
ones is one error naming line 3, and a good file gives all its rows (blank lines skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_strawberry.errors import ConfigurationError
from open_strawberry.training import mixed_rows, parse_mix, read_rows
from tests.training.test_config import DPO_ROW, SFT_ROW

BAD_SFT = [
    ("{not json}", "not valid JSON"),
    (json.dumps(DPO_ROW), "a SFT row needs the fields messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "must end with the assistant"),
    (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}), "not .*role"),
    (json.dumps({"messages": []}), "non-empty list"),
    (json.dumps({"messages": [{"role": "assistant", "content": 4}]}), "not .*content"),
]
BAD_DPO = [
    (json.dumps(SFT_ROW), "a DPO row needs the fields prompt, chosen, rejected"),
    (json.dumps({**DPO_ROW, "rejected": []}), "'rejected' must be a non-empty list"),
    (json.dumps({**DPO_ROW, "chosen": [{"role": "assistant"}]}), "'chosen' holds a message"),
]


def lines(path: Path, *rows: str) -> Path:
    path.write_text("".join(row + "\n" for row in rows))
    return path


@pytest.mark.parametrize(("bad", "message"), BAD_SFT)
def test_a_bad_third_sft_line_is_named(tmp_path: Path, bad: str, message: str) -> None:
    good = json.dumps(SFT_ROW)
    path = lines(tmp_path / "sft.jsonl", good, good, bad, good)
    with pytest.raises(ConfigurationError, match=f":3: .*{message}"):
        read_rows(path, "sft")


@pytest.mark.parametrize(("bad", "message"), BAD_DPO)
def test_a_bad_third_dpo_line_is_named(tmp_path: Path, bad: str, message: str) -> None:
    good = json.dumps(DPO_ROW)
    path = lines(tmp_path / "dpo.jsonl", good, good, bad)
    with pytest.raises(ConfigurationError, match=f":3: .*{message}"):
        read_rows(path, "dpo")


def test_the_line_number_counts_blank_lines(tmp_path: Path) -> None:
    good = json.dumps(SFT_ROW)
    path = lines(tmp_path / "sft.jsonl", good, "", good, "   ", "{bad")
    with pytest.raises(ConfigurationError, match=r"sft\.jsonl:5: not valid JSON"):
        read_rows(path, "sft")


def test_every_row_of_a_good_file_is_read(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}]}
            for n in range(5)]
    path = lines(tmp_path / "sft.jsonl", *(json.dumps(row) for row in rows[:3]), "", *(json.dumps(r) for r in rows[3:]))
    assert read_rows(path, "sft") == rows


def test_a_bad_line_in_a_mixed_in_file_is_named(tmp_path: Path) -> None:
    good = json.dumps(SFT_ROW)
    data = lines(tmp_path / "sft.jsonl", good, good)
    extra = lines(tmp_path / "extra.jsonl", good, good, "[]")
    with pytest.raises(ConfigurationError, match=r"extra\.jsonl:3: a SFT row needs"):
        mixed_rows(data, "sft", [parse_mix(f"{extra}:0.5")])
