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


def test_stats_says_which_pass_at_k_it_left_out_and_which_model_has_no_price(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # no wrapped cells
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s"]), record("a", 1, False, ["s"]),
                                          record("b", 0, True, ["s"])])
    assert main(["stats", str(traces), "--k", "1", "--k", "2", "--k", "8", "--price", "openai:gpt-4o=1,2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "pass@8 (all samples) │ — (left out: no problem has 8 samples; the most is 2)" in out
    assert "pass@2 (all samples) │ 100.0% (over the 1 of 2 problems with 2+ samples)" in out
    assert "no --price for mock:m" in out
    assert main(["stats", str(traces), "--json", "--k", "8"]) == 0
    assert "pass@8 left out: no problem has 8 samples; the most is 2" in capsys.readouterr().err


def test_the_summary_and_stats_show_the_pass_rate_the_same_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    """One definition: correct of graded traces, labelled so; pass@1 is over every sample."""
    from open_strawberry.cli.progress import print_summary
    from open_strawberry.pipeline import RunSummary

    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s"]), record("a", 1, None, ["s"]),
                                          record("b", 0, False, ["s"])])
    assert main(["stats", str(traces)]) == 0
    stats_out = " ".join(capsys.readouterr().out.split())
    print_summary(RunSummary(out="t", manifest="m", planned=3, resumed=0, written=3, statuses={"final": 3},
                             correct=1, graded=2, pass_rate=0.5, mean_turns=1.0, input_tokens=0, output_tokens=0,
                             ttft_p50_s=None, ttft_p90_s=None, ttft_p99_s=None, turn_p50_s=None, turn_p99_s=None,
                             elapsed_s=1.0, interrupted=False))
    summary_out = " ".join(capsys.readouterr().out.split())
    for shown in (stats_out, summary_out):
        assert "pass rate (of graded) │ 50.0% (1 of 2 graded)" in shown
    assert "pass@1 (all samples) │ 25.0%" in stats_out  # a: 1 of 2, b: 0 of 1; averaged over problems
