"""Commands that leave something out say what, and why (issue 25: a newcomer's path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry.cli import main
from tests.traces.records import record, write


def test_export_dpo_with_no_pair_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s"]), record("a", 1, True, ["t"]),
                                          record("b", 0, False, ["s"]), record("c", 0, None, ["s"])])
    assert main(["export", "dpo", str(traces), "--out", str(tmp_path / "d.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "wrote 0 DPO pairs" in err
    assert "no problem had both a correct and an incorrect trace" in err
    assert "1 problems had only correct traces, 1 only incorrect ones, and 1 traces had no grade" in err
