"""Stats, exports and selection: figures checked by hand, formats checked with `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from open_strawberry.cli import main
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.traces import export_dpo, export_sft, select_problems
from open_strawberry.traces.stats import pass_at_k, trace_stats
from tests.traces.records import record, write


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(5, 2, 1, 0.4), (5, 2, 2, 0.7), (5, 2, 4, 1.0), (5, 0, 3, 0.0), (10, 3, 5, 1 - 21 / 252), (1, 1, 1, 1.0)],
)
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_stats_per_problem_and_overall(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [
        record("a", 0, True, ["s1"]), record("a", 1, False, ["s1", "s2"]), record("a", 2, None, ["s1", "s2", "s3"]),
        record("b", 0, True, ["s1"]), record("b", 1, True, ["s1"]),
    ])
    stats = trace_stats(traces, ks=(1, 2, 3), prices={"mock:m": (1.0, 2.0)})
    assert (stats.traces, stats.problems, stats.correct, stats.graded) == (5, 2, 3, 4)
    assert stats.statuses == {"final": 4, "max_turns": 1}
    assert stats.pass_at[1] == pytest.approx((1 / 3 + 1) / 2)
    assert stats.pass_at[2] == pytest.approx((pass_at_k(3, 1, 2) + 1) / 2)
    assert stats.pass_at[3] == pytest.approx(pass_at_k(3, 1, 3))  # only problem a has 3 samples
    assert stats.mean_turns == pytest.approx(8 / 5)
    assert (stats.input_tokens, stats.output_tokens) == (80, 40)
    assert stats.cost == pytest.approx((80 * 1 + 40 * 2) / 1e6)
    assert trace_stats(traces, prices={"other": (1, 1)}).cost is None


def test_sft_keeps_correct_traces_whole_or_collapsed(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["step one", "step two"]), record("a", 1, False, ["x"])])
    whole = export_sft(traces, tmp_path / "sft.jsonl")
    assert (whole.read, whole.written, whole.skipped) == (2, 1, 1)
    row = json.loads((tmp_path / "sft.jsonl").read_text())
    assert [m["role"] for m in row["messages"]][:3] == ["system", "user", "assistant"]
    export_sft(traces, tmp_path / "collapsed.jsonl", format="collapsed")
    row = json.loads((tmp_path / "collapsed.jsonl").read_text())
    assert row["messages"][-1] == {"role": "assistant", "content": "step one\n\nstep two"}
    assert len(row["messages"]) == 3


def test_dpo_pairs_cap_extremes_and_dedup(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [
        record("a", 0, True, ["long right answer here"]), record("a", 1, True, ["ok"]),
        record("a", 2, False, ["no"]), record("a", 3, False, ["a much longer wrong answer"]),
        record("a", 4, False, ["no"]),  # the same text as sample 2: a duplicate pair
        record("b", 0, True, ["only right"]),  # b has no wrong trace: no pair
    ])
    every = export_dpo(traces, tmp_path / "all.jsonl", max_pairs=10)
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert (every.written, every.problems, every.skipped) == (4, 1, 2)  # 2 right x 3 wrong, 2 duplicates
    assert all(row["prompt"] == [{"role": "user", "content": "Solve a"}] for row in rows)
    capped = export_dpo(traces, tmp_path / "capped.jsonl", max_pairs=1)
    assert capped.written == 1
    export_dpo(traces, tmp_path / "ext.jsonl", pairing="extremes")
    (row,) = [json.loads(line) for line in (tmp_path / "ext.jsonl").read_text().splitlines()]
    assert row["chosen"] == [{"role": "assistant", "content": "ok"}]
    assert row["rejected"] == [{"role": "assistant", "content": "a much longer wrong answer"}]
    export_dpo(traces, tmp_path / "multi.jsonl", pairing="extremes", format="multi-turn")
    row = json.loads((tmp_path / "multi.jsonl").read_text())
    assert [m["role"] for m in row["chosen"]] == ["assistant", "user"]


def test_dpo_counts_the_problems_it_left_out_and_why(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [
        record("a", 0, True, ["s"]), record("a", 1, False, ["s"]), record("b", 0, True, ["s"]),
        record("c", 0, False, ["s"]), record("c", 1, False, ["t"]), record("d", 0, None, ["s"]),
    ])
    counts = export_dpo(traces, tmp_path / "dpo.jsonl")
    assert (counts.problems, counts.all_correct, counts.all_incorrect, counts.ungraded) == (1, 1, 1, 1)


def test_select_keeps_the_barely_solved_and_leaves_out_earlier_rounds(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [
        record("easy", 0, True, ["s"]), record("easy", 1, True, ["s"]),
        record("mid", 0, True, ["s"]), record("mid", 1, False, ["s"]),
        record("mid2", 0, False, ["s"]), record("mid2", 1, True, ["s"]),
        record("hard", 0, False, ["s"]), record("hard", 1, None, ["s"]),
    ])
    earlier = tmp_path / "round1.jsonl"
    earlier.write_text('{"id": "mid2", "prompt": "p", "answer": "a"}\n')
    counts = select_problems(traces, tmp_path / "next.jsonl", min_pass=0.1, max_pass=0.6, exclude=[earlier])
    rows = [json.loads(line) for line in (tmp_path / "next.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["mid"]
    assert rows[0]["prompt"] == "Solve mid" and rows[0]["answer"] == "1"
    assert (counts.problems, counts.written) == (4, 1)


async def test_generate_then_stats_exports_and_select_agree(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(accuracy=0.5, confident_after=2)) as server:
        summary = await generate(GenerateConfig(problems="builtin:mixed:12", model=f"mock:r@{server.url}/v1",
                                                out=str(out), samples=4, final_every=1))
    stats = trace_stats(out, ks=(1, 4))
    assert stats.traces == summary.written == 48 and stats.correct == summary.correct
    sft = export_sft(out, tmp_path / "sft.jsonl")
    assert sft.written == stats.correct
    both = [p for p in stats.per_problem if 0 < p.correct < p.samples]
    dpo = export_dpo(out, tmp_path / "dpo.jsonl", max_pairs=3)
    assert dpo.problems == len(both)
    assert dpo.written + dpo.skipped == sum(min(3, p.correct * (p.samples - p.correct)) for p in both)
    chosen = select_problems(out, tmp_path / "next.jsonl", min_pass=0.25, max_pass=0.75)
    assert chosen.written == sum(1 for p in stats.per_problem if 0.25 <= p.pass_rate <= 0.75)
    assert stats.pass_at[1] == pytest.approx(sum(p.pass_rate for p in stats.per_problem) / stats.problems)

    sft_set = datasets.load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train")
    assert sft_set.column_names == ["messages"] and len(sft_set) == sft.written
    assert sft_set[0]["messages"][0]["role"] == "system"
    dpo_set = datasets.load_dataset("json", data_files=str(tmp_path / "dpo.jsonl"), split="train")
    assert sorted(dpo_set.column_names) == ["chosen", "prompt", "rejected"] and len(dpo_set) == dpo.written


async def test_select_writes_each_problem_as_its_problems_file_gave_it(tmp_path: Path) -> None:
    problems = [{"id": "sum", "prompt": "What is 2 + 3?", "answer": "5", "grader": "numeric",
                 "meta": {"source": "hand", "level": 1, "tags": ["sums"]}},
                {"id": "bare", "prompt": "What is 4 + 4?", "answer": "8", "grader": "numeric", "meta": {}}]
    source = tmp_path / "problems.jsonl"
    source.write_text("".join(json.dumps(problem) + "\n" for problem in problems))
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(accuracy=0.5)) as server:
        await generate(GenerateConfig(problems=str(source), model=f"mock:r@{server.url}/v1", out=str(out),
                                      samples=2))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["problem_id"]: line.get("problem_meta") for line in lines} == {"sum": problems[0]["meta"],
                                                                               "bare": None}  # none: left out
    select_problems(out, tmp_path / "next.jsonl", min_pass=0.0, max_pass=1.0)
    selected = sorted((json.loads(line) for line in (tmp_path / "next.jsonl").read_text().splitlines()),
                      key=lambda row: row["id"])
    assert selected == sorted(problems, key=lambda row: row["id"])


def test_the_cli_prints_stats_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = write(tmp_path / "t.jsonl", [record("a", 0, True, ["s"]), record("a", 1, False, ["s"])])
    assert main(["stats", str(traces), "--json", "--per-problem", "--k", "1", "--k", "2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["pass_at"] == {"1": 0.5, "2": 1.0}
    assert payload["per_problem"][0]["pass_rate"] == 0.5
    assert main(["export", "sft", str(traces), "--out", str(tmp_path / "s.jsonl")]) == 0
    assert main(["select", str(traces), "--out", str(tmp_path / "n.jsonl"), "--min-pass", "0.5"]) == 0
    assert main(["stats", str(tmp_path / "missing.jsonl")]) == 1
